"""Measure a command as a whole process tree: wall time, CPU time, peak memory.

Usage::

    python benchmarks/proctree.py [--json FILE] [--interval S] [--grace S] -- CMD ARGS...

Starts ``CMD`` with :mod:`subprocess` (stdin/stdout/stderr inherited), samples the
process tree every ``--interval`` seconds (default 0.05) with :mod:`psutil`, prints ONE
JSON line with the figures below to stdout (after the command's own output), writes the
same JSON to ``--json FILE`` if given, and exits with the command's exit code
(``128 + N`` if the command was killed by signal ``N``; 127 if it could not be started).

For reuse from other benchmark scripts::

    from proctree import measure          # benchmarks/ on sys.path
    result = measure(["python", "script.py", "in.csv", "out/"])

What "the tree" is
------------------
The started process (the *top* process) and every process descended from it, found
recursively at each sample, including processes that start and die during the run
(Dask nanny/worker processes, multiprocessing pools, shell pipelines). A process stays
in the tree once seen, even if its parent dies and it is re-parented (orphaned), and its
later children are followed too. On Linux this process is made a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``) for the duration of the run, so a descendant
orphaned even before any sample saw it is re-parented to us and found (any child of
ours that did not exist before the run is taken as part of the tree); without subreaper
(``--no-subreaper``, other OSes) such an orphan is lost to init and not measured at all.
A process that starts *and* exits entirely between two samples is never seen by
sampling (it is still counted in CPU, see below).

Overhead: one sample lists all processes once (``psutil.process_iter``) and reads a few
``/proc`` files per tree process, about 2-3 ms with ~70 processes on the system, i.e. a
few percent of one core at 20 Hz, spent in this (the measuring) process, which is not
part of the figures but does compete for CPUs with the command on a small machine.

The figures (keys of the JSON object)
-------------------------------------
``cmd``
    The command, as a list of strings.
``exit_code``
    The top process's return code (``subprocess`` convention: negative ``-N`` if it was
    killed by signal ``N``).
``wall_s``
    Wall-clock seconds from just before the top process is started until it has exited
    (measured by a thread blocked in ``wait()``, so it is exact to the millisecond and
    not quantised by the sampling interval). Descendants still running after the top
    process exits do not extend it.
``cpu_s``, ``cpu_user_s``, ``cpu_sys_s``
    CPU seconds (user + system, and the two parts) consumed by the whole tree. Two
    sources are computed and the larger total is reported (both are lower bounds of the
    truth; in the normal case the first one is exact):

    * ``cpu_rusage_s``: ``resource.getrusage(RUSAGE_CHILDREN)`` after the run minus
      before it. The kernel adds the *exact* user+sys time of a process to its parent's
      "children" account when the parent reaps it (``wait()``), together with
      everything that process had itself reaped. So, once the top process has been
      reaped by us, this contains every descendant that exited and was waited for along
      the chain, however short-lived (never seen by sampling is fine). As child
      subreaper (Linux) we also reap orphaned descendants re-parented to us, so they
      are counted too. Not counted: descendants still running at the
      end (added from sampling, see below), children of a parent that sets
      ``SIGCHLD`` to ``SIG_IGN`` (the kernel discards their times), and, without
      subreaper (non-Linux), orphans reaped by init. If the calling program reaps
      *other* children of its own concurrently with ``measure()`` (threads), their CPU
      lands in this figure too: do not measure concurrently in one process.
      Descendants still alive when measuring ends (``leftover_processes``) contribute
      their last sampled own + reaped-children CPU time.
    * ``cpu_sampled_s``: sum over every process ever seen of its last sampled own
      user+sys time (``psutil.Process.cpu_times()``). Misses the CPU used after a
      process's last sample (up to one interval each) and processes never seen. A
      pure cross-check, used only if it is larger (then ``cpu_source`` = "sampled").
``cpu_source``
    ``"rusage"`` or ``"sampled"``: which of the two gave ``cpu_s``.
``peak_tree_rss_mib``
    Peak over the samples of the SUM of the resident set sizes (RSS) of all live
    processes of the tree at that sample, in MiB (2**20 bytes). Sampled, so a spike
    shorter than the interval can be missed. RSS counts shared pages (shared libraries,
    copy-on-write pages after ``fork``) once per process, so the sum over-states the
    physical memory of a forked tree somewhat; it is what an operator adding up
    ``ps``/``top`` RSS columns would see, and the usual "memory including workers" figure.
``peak_tree_rss_at_s``
    Seconds after start at which that peak was sampled.
``peak_top_rss_mib``
    Peak RSS of the top process alone, in MiB: the kernel's own high-water mark
    (``VmHWM`` in ``/proc/PID/status``, Linux) as read at the last sample before the top
    process exited, or the largest sampled RSS where ``VmHWM`` is unavailable. Growth
    in the last < interval before exit can be missed.
``max_processes``
    Largest number of live tree processes in one sample (the top one included).
``processes_seen``
    Number of distinct processes ever seen in the tree (the top one included).
``leftover_processes``
    Tree processes still alive when measuring ended: after the top process exits we
    keep sampling (and reaping orphans) until the tree is empty or ``--grace`` seconds
    (default 2) have passed. They are not killed.
``samples``, ``interval_s``
    Number of samples taken and the target sampling interval in seconds.
"""

import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

import psutil

MIB = 1024 * 1024

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied)  # ZombieProcess is a NoSuchProcess


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def _get_subreaper():
    """Current PR_GET_CHILD_SUBREAPER value, or None where unsupported."""
    if not sys.platform.startswith("linux"):
        return None
    libc = _libc()
    if libc is None:
        return None
    val = ctypes.c_int(0)
    if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(val), 0, 0, 0) != 0:
        return None
    return val.value


def _set_subreaper(flag):
    """Set PR_SET_CHILD_SUBREAPER; True on success."""
    libc = _libc()
    if libc is None:
        return False
    return libc.prctl(_PR_SET_CHILD_SUBREAPER, int(bool(flag)), 0, 0, 0) == 0


def _vm_hwm_bytes(pid):
    """The kernel's peak-RSS high-water mark of a live process (Linux), else None."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ppid_map():
    """{pid: ppid} of all processes visible now (vanishing ones are skipped)."""
    out = {}
    for p in psutil.process_iter(["ppid"]):
        ppid = p.info.get("ppid")
        if ppid is not None:
            out[p.pid] = ppid
    return out


class _Tracker:
    """Holds everything seen about the tree; ``sample()`` takes one sample."""

    def __init__(self, root, foreign):
        self.me = os.getpid()
        self.root = root
        # our own children that existed before the run (the caller's): never in the tree
        self.foreign = foreign
        self.root_key = (root.pid, root.create_time())
        # key (pid, create_time) -> psutil.Process; the key guards against pid reuse
        self.procs = {self.root_key: root}
        # key -> (own user, own sys, children user, children sys) as last sampled
        self.cpu = {}
        self.dead = set()  # keys known to have exited (and been reaped, or not ours)
        self.peak_tree = 0
        self.peak_tree_at = 0.0
        self.peak_top_rss = 0
        self.top_hwm = None
        self.max_procs = 0
        self.samples = 0

    def _discover(self):
        """Add processes descended from any live seen process (BFS over one ppid map).

        Our own direct children that are new since the start also belong to the tree:
        besides the top process, these are orphaned descendants re-parented to us as
        subreaper, possibly before any sample saw them.
        """
        live = [k for k in self.procs if k not in self.dead]
        try:
            ppids = _ppid_map()
        except Exception:  # pragma: no cover - listing /proc failed as a whole
            return
        children = {}
        for pid, ppid in ppids.items():
            children.setdefault(ppid, []).append(pid)
        known_pids = {k[0]: k for k in self.procs if k not in self.dead}
        stack = [k[0] for k in live]
        for pid in children.get(self.me, ()):
            if pid in known_pids:
                continue
            try:
                p = psutil.Process(pid)
                key = (pid, p.create_time())
            except _GONE:
                continue
            if key in self.foreign or key in self.dead:
                continue
            self.procs[key] = p
            known_pids[pid] = key
            stack.append(pid)
        visited = set(stack)
        while stack:
            parent = stack.pop()
            for pid in children.get(parent, ()):
                if pid in visited:
                    continue
                visited.add(pid)
                if pid not in known_pids:
                    try:
                        p = psutil.Process(pid)
                        key = (pid, p.create_time())
                    except _GONE:
                        continue
                    if key not in self.procs:
                        self.procs[key] = p
                    known_pids[pid] = key
                stack.append(pid)

    def _reap(self, key, proc):
        """Reap a zombie descendant that was re-parented to us (subreaper)."""
        if key == self.root_key:
            return  # the waiter thread owns the top process
        try:
            if proc.ppid() != self.me:
                return
        except _GONE:
            return
        try:
            pid, _ = os.waitpid(key[0], os.WNOHANG)
            if pid:
                self.dead.add(key)
        except ChildProcessError:
            pass

    def sample(self, t, top_alive=True):
        """One sample at ``t`` seconds after start; returns the number of live processes."""
        self._discover()
        total = 0
        nlive = 0
        for key, p in list(self.procs.items()):
            if key in self.dead:
                continue
            try:
                with p.oneshot():
                    if not p.is_running():  # pid reused by another process
                        self.dead.add(key)
                        continue
                    status = p.status()
                    ct = p.cpu_times()
                    self.cpu[key] = (ct.user, ct.system,
                                     getattr(ct, "children_user", 0.0),
                                     getattr(ct, "children_system", 0.0))
                    if status == psutil.STATUS_ZOMBIE:
                        self._reap(key, p)
                        continue
                    rss = p.memory_info().rss
            except _GONE:
                # exited (or no longer readable) between listing and reading
                if not _alive(p):
                    self.dead.add(key)
                continue
            total += rss
            nlive += 1
            if key == self.root_key and top_alive:
                self.peak_top_rss = max(self.peak_top_rss, rss)
                hwm = _vm_hwm_bytes(key[0])
                if hwm is not None:
                    self.top_hwm = hwm if self.top_hwm is None else max(self.top_hwm, hwm)
        if total > self.peak_tree:
            self.peak_tree = total
            self.peak_tree_at = t
        self.max_procs = max(self.max_procs, nlive)
        self.samples += 1
        return nlive

    def leftovers(self):
        out = []
        for key, p in self.procs.items():
            if key in self.dead or key == self.root_key:
                continue
            if _alive(p):
                out.append(key)
        return out


def _alive(p):
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except _GONE:
        return False


def compile_engine_bytecode(env=None):
    """Compile the bytecode of the `engine` package that commands run with `env` will
    import, as an installed package has it: a source checkout run under
    PYTHONDONTWRITEBYTECODE=1 (as CI and this machine set) would otherwise compile every
    engine module again in every measured process (about 0.4 s each)."""
    code = "import compileall, pathlib, engine; compileall.compile_dir(pathlib.Path(engine.__file__).parent, quiet=1)"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def measure(cmd, *, interval=0.05, grace=2.0, subreaper=True, on_start=None, **popen_kwargs):
    """Run ``cmd`` (list of str) to completion and measure its whole process tree.

    Returns the dict described in the module docstring (``exit_code``, ``wall_s``,
    ``cpu_s``, ``peak_tree_rss_mib``, ``peak_top_rss_mib``, ...). ``popen_kwargs`` go to
    :class:`subprocess.Popen` (e.g. ``stdout=subprocess.DEVNULL``, ``env``, ``cwd``).
    ``subreaper`` (Linux) makes this process adopt orphaned descendants during the run so
    that their CPU time is accounted exactly; the previous setting is restored after.
    ``on_start(pid)`` is called right after the top process is started.
    Raises ``OSError`` if the command cannot be started.
    """
    cmd = [str(c) for c in cmd]
    old_subreaper = _get_subreaper() if subreaper else None
    subreaper_on = False
    if subreaper and old_subreaper == 0:
        subreaper_on = _set_subreaper(True)
    foreign = set()
    for c in psutil.Process().children():
        try:
            foreign.add((c.pid, c.create_time()))
        except _GONE:
            pass
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, **popen_kwargs)
        if on_start is not None:
            on_start(proc.pid)
        root = psutil.Process(proc.pid)  # not reaped yet: readable even if exited
        tracker = _Tracker(root, foreign)

        done = threading.Event()
        t_end = [None]

        def _waiter():
            proc.wait()
            t_end[0] = time.perf_counter()
            done.set()

        threading.Thread(target=_waiter, name="proctree-wait", daemon=True).start()

        next_tick = t0
        while not done.is_set():
            tracker.sample(time.perf_counter() - t0)
            next_tick += interval
            now = time.perf_counter()
            if next_tick < now:  # sampling fell behind: do not burst
                next_tick = now
            done.wait(next_tick - now)
        wall = t_end[0] - t0

        # The top process has exited and been reaped. Follow what is left of the tree
        # (re-parented workers shutting down) for up to `grace` seconds.
        deadline = time.perf_counter() + grace
        while True:
            nlive = tracker.sample(time.perf_counter() - t0, top_alive=False)
            if nlive == 0 or time.perf_counter() >= deadline:
                break
            time.sleep(interval)
        leftover = tracker.leftovers()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if subreaper_on:
            _set_subreaper(old_subreaper)

    # CPU from the kernel accounting of reaped processes, plus what the still-running
    # leftovers have used so far (their own and their reaped children's time).
    ru_user = ru1.ru_utime - ru0.ru_utime
    ru_sys = ru1.ru_stime - ru0.ru_stime
    for key in leftover:
        u, s, cu, cs = tracker.cpu.get(key, (0.0, 0.0, 0.0, 0.0))
        ru_user += u + cu
        ru_sys += s + cs
    sm_user = sum(v[0] for v in tracker.cpu.values())
    sm_sys = sum(v[1] for v in tracker.cpu.values())
    if sm_user + sm_sys > ru_user + ru_sys:
        source, user, system = "sampled", sm_user, sm_sys
    else:
        source, user, system = "rusage", ru_user, ru_sys

    top_peak = tracker.top_hwm if tracker.top_hwm is not None else tracker.peak_top_rss
    return {
        "cmd": cmd,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 4),
        "cpu_s": round(user + system, 4),
        "cpu_user_s": round(user, 4),
        "cpu_sys_s": round(system, 4),
        "cpu_source": source,
        "cpu_rusage_s": round(ru_user + ru_sys, 4),
        "cpu_sampled_s": round(sm_user + sm_sys, 4),
        "peak_tree_rss_mib": round(tracker.peak_tree / MIB, 2),
        "peak_tree_rss_at_s": round(tracker.peak_tree_at, 3),
        "peak_top_rss_mib": round(max(top_peak, tracker.peak_top_rss) / MIB, 2),
        "max_processes": tracker.max_procs,
        "processes_seen": len(tracker.procs),
        "leftover_processes": len(leftover),
        "samples": tracker.samples,
        "interval_s": interval,
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" in argv:
        i = argv.index("--")
        own, cmd = argv[:i], argv[i + 1:]
    else:
        own, cmd = [], argv
    ap = argparse.ArgumentParser(
        prog="proctree.py",
        description="Measure a command as a whole process tree (wall, CPU, peak RSS).",
        usage="python benchmarks/proctree.py [--json FILE] [--interval S] [--grace S] -- CMD ARGS...",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the JSON result to FILE")
    ap.add_argument("--interval", type=float, default=0.05, help="sampling interval, seconds (0.05)")
    ap.add_argument("--grace", type=float, default=2.0,
                    help="seconds to follow descendants after the top process exits (2)")
    ap.add_argument("--no-subreaper", action="store_true",
                    help="do not adopt orphaned descendants (Linux)")
    args = ap.parse_args(own)
    if not cmd:
        ap.error("no command given (put it after --)")

    # Forward termination requests to the command. SIGINT from a terminal already reaches
    # the whole foreground process group, so here it is only swallowed (we keep measuring
    # until the command exits). Python-level handlers are reset to the default by exec,
    # so the command starts with normal signal dispositions.
    child = {}

    def _forward(signum, _frame):
        pid = child.get("pid")
        if pid is not None:
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    signal.signal(signal.SIGTERM, _forward)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _forward)
    signal.signal(signal.SIGINT, lambda _s, _f: None)

    try:
        result = measure(cmd, interval=args.interval, grace=args.grace,
                         subreaper=not args.no_subreaper,
                         on_start=lambda pid: child.__setitem__("pid", pid))
    except OSError as e:
        print(f"proctree: cannot run {cmd[0]!r}: {e}", file=sys.stderr)
        return 127

    line = json.dumps(result)
    sys.stdout.flush()
    print(line, flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    rc = result["exit_code"]
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.exit(main())
