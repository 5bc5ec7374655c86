"""The cluster/ deployment recipes, run for real where this machine can run them.

Plain processes: the start/stop scripts start a real scheduler and workers (plain and
TLS), bound to 127.0.0.1, and the engine command they print runs against them. SSH: a
real SSH server (asyncssh) on 127.0.0.1 lets SSHCluster start a cluster the engine runs
on. SLURM/PBS and Kubernetes cannot run here: their job scripts are rendered by
dask-jobqueue itself and the custom resources are checked against the dask-kubernetes
operator's own schemas and spec builder.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import psutil
import yaml
from dask.utils import parse_bytes

from conftest import TlsFiles, free_port

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
DASK = str(Path(sys.executable).parent / "dask")


# --- plain processes -----------------------------------------------------------------

def script(name: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLUSTER_")}  # flags only
    return subprocess.run(["bash", str(CLUSTER / "processes" / name), *args], capture_output=True, text=True,
                          timeout=timeout, env={**env, "DASK": DASK})


def printed(output: str, label: str) -> str:
    """The value of a `label: value` line that start-cluster.sh printed."""
    (line,) = [line for line in output.splitlines() if line.startswith(f"{label}:")]
    return line.split(":", 1)[1].strip()


def cluster_processes(run_dir: Path) -> list[psutil.Process]:
    """The processes of the pid files, with their children (a worker's nanny forks the worker)."""
    leaders = [psutil.Process(int(path.read_text())) for path in sorted(run_dir.glob("*.pid"))]
    return leaders + [child for leader in leaders for child in leader.children(recursive=True)]


def kill_leftovers(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def run_printed_command(output: str, source: Path, out: Path) -> subprocess.CompletedProcess:
    """The `run:` line as printed (environment assignments included), with INPUT filled in."""
    words = shlex.split(printed(output, "run"))
    env = dict(word.split("=", 1) for word in words[:words.index("engine")])
    command = words[words.index("engine") + 1:]
    command[command.index("INPUT")] = str(source)
    return subprocess.run([sys.executable, "-m", "engine", *command, "--output", str(out)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def small_input(folder: Path) -> Path:
    from engine.sources.generate import generate_sales

    return generate_sales(folder / "sales.csv", 2_000, seed=3).path


def non_loopback_addresses() -> list[str]:
    return [a.address for addresses in psutil.net_if_addrs().values() for a in addresses
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def test_start_script_starts_a_loopback_cluster_and_stop_script_ends_it(tmp_path):
    from distributed import Client

    run_dir, port = tmp_path / "run", free_port()
    started = script("start-cluster.sh", "--run-dir", str(run_dir), "--port", str(port),
                     "--dashboard-port", str(free_port()), "--workers", "2", "--threads", "1",
                     "--memory-limit", "1GiB", "--local-directory", str(tmp_path / "spill"))
    processes = cluster_processes(run_dir) if run_dir.exists() else []
    try:
        assert started.returncode == 0, started.stderr
        address = printed(started.stdout, "scheduler")
        assert address == f"tcp://127.0.0.1:{port}"
        assert printed(started.stdout, "dashboard").startswith("http://127.0.0.1:")
        names = {"scheduler", "worker-1", "worker-2"}
        assert {p.stem for p in run_dir.glob("*.pid")} == names and {p.stem for p in run_dir.glob("*.log")} == names

        with Client(address, timeout=10) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            assert len(workers) == 2
            assert all(w["nthreads"] == 1 and w["memory_limit"] == 2**30 for w in workers)
            spill = client.run(lambda dask_worker: dask_worker.local_directory)
            assert all(Path(d).is_relative_to(tmp_path / "spill") for d in spill.values())

        # Nothing listens beyond loopback: not the scheduler, its dashboard, the nannies or the workers.
        listening = [c.laddr for p in processes for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        assert listening and all(ip == "127.0.0.1" for ip, _ in listening), listening
        for ip in non_loopback_addresses():
            with socket.socket() as sock:
                assert sock.connect_ex((ip, port)) != 0, f"the scheduler answers on {ip}"

        # The printed command runs the engine on this cluster.
        done = run_printed_command(started.stdout, small_input(tmp_path), tmp_path / "out")
        assert done.returncode == 0, done.stderr
        report = json.loads((tmp_path / "out" / "run_report.json").read_text())
        assert report["mode"] == "distributed" and report["backend"]["scheduler"] == address
        assert report["backend"]["workers"] == 2

        again = script("start-cluster.sh", "--run-dir", str(run_dir), "--port", str(free_port()))
        assert again.returncode == 1 and "already running" in again.stderr

        stopped = script("stop-cluster.sh", "--run-dir", str(run_dir))
        assert stopped.returncode == 0, stopped.stderr
        assert not list(run_dir.glob("*.pid"))
        _, alive = psutil.wait_procs(processes, timeout=15)  # children may take a moment after their parent
        assert all(p.status() == psutil.STATUS_ZOMBIE for p in alive), alive
        assert sorted(p.stem for p in run_dir.glob("*.log")) == sorted(names)  # logs are kept

        again = script("stop-cluster.sh", "--run-dir", str(run_dir))
        assert again.returncode == 0 and "no Dask cluster running" in again.stdout
    finally:
        script("stop-cluster.sh", "--run-dir", str(run_dir), "--timeout", "5")
        kill_leftovers(processes)


def test_start_script_with_tls_files(tmp_path):
    from distributed import Client

    tls, run_dir = TlsFiles(tmp_path / "tls"), tmp_path / "run"
    started = script("start-cluster.sh", "--run-dir", str(run_dir), "--port", str(free_port()),
                     "--dashboard-port", "off", "--workers", "1",
                     "--tls-ca", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key))
    processes = cluster_processes(run_dir) if run_dir.exists() else []
    try:
        assert started.returncode == 0, started.stderr
        address = printed(started.stdout, "scheduler")
        assert address.startswith("tls://127.0.0.1:")
        with Client(address, security=tls.security(), timeout=10) as client:
            assert len(client.scheduler_info()["workers"]) == 1
            assert all(w.startswith("tls://") for w in client.scheduler_info()["workers"])

        # The printed command carries the engine's TLS settings and runs over tls://.
        done = run_printed_command(started.stdout, small_input(tmp_path), tmp_path / "out")
        assert done.returncode == 0, done.stderr
        assert json.loads((tmp_path / "out" / "run_report.json").read_text())["backend"]["tls"] == "files"
    finally:
        script("stop-cluster.sh", "--run-dir", str(run_dir), "--timeout", "5")
        kill_leftovers(processes)


def test_start_script_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        started = script("start-cluster.sh", "--run-dir", str(tmp_path), "--port", str(taken.getsockname()[1]))
    assert started.returncode == 1 and "already in use" in started.stderr
    assert not list(tmp_path.glob("*.pid"))


# --- SLURM / PBS (dask-jobqueue) ------------------------------------------------------

def loopback_interface() -> str:
    return next(name for name, addresses in psutil.net_if_addrs().items()
                if any(a.address == "127.0.0.1" for a in addresses))


def job_script(system: str, folder: Path) -> str:
    done = subprocess.run([sys.executable, str(CLUSTER / "jobqueue" / "run_on_jobqueue.py"), system,
                           "--print-job-script", "--interface", loopback_interface()],
                          capture_output=True, text=True, timeout=60, cwd=folder)  # it makes the log directory
    assert done.returncode == 0, done.stderr
    return done.stdout


def worker_command(script_text: str) -> list[str]:
    (line,) = [line for line in script_text.splitlines() if "distributed.cli.dask_worker" in line]
    return shlex.split(line, posix=False)


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def check_worker_command(script_text: str, settings: dict) -> None:
    words = worker_command(script_text)
    assert words[:3] == [sys.executable, "-m", "distributed.cli.dask_worker"]  # this very environment
    processes = settings["processes"]
    assert int(option(words, "--nworkers")) == processes
    assert int(option(words, "--nthreads")) == settings["cores"] // processes
    assert parse_bytes(option(words, "--memory-limit")) == parse_bytes(settings["memory"]) // processes
    assert option(words, "--local-directory") == settings["local-directory"]
    assert option(words, "--interface") == loopback_interface()


def test_slurm_job_script(tmp_path):
    settings = yaml.safe_load((CLUSTER / "jobqueue" / "jobqueue.yaml").read_text())["jobqueue"]["slurm"]
    text = job_script("slurm", tmp_path)
    directives = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#SBATCH")]
    assert f"--cpus-per-task={settings['cores']}" in directives
    assert f"-t {settings['walltime']}" in directives
    (memory,) = [d.split("=")[1] for d in directives if d.startswith("--mem=")]
    assert parse_bytes(memory.replace("G", "GiB")) == parse_bytes(settings["memory"])  # SLURM's G is GiB
    assert all(extra in directives for extra in settings["job-extra-directives"])
    assert any(d.startswith(f"-o {settings['log-directory']}/") for d in directives)
    check_worker_command(text, settings)


def test_pbs_job_script(tmp_path):
    settings = yaml.safe_load((CLUSTER / "jobqueue" / "jobqueue.yaml").read_text())["jobqueue"]["pbs"]
    text = job_script("pbs", tmp_path)
    directives = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#PBS")]
    (select,) = [d for d in directives if d.startswith("-l select=")]
    assert f"ncpus={settings['cores']}" in select
    memory = select.split("mem=")[1]
    assert parse_bytes(memory.replace("GB", "GiB")) == parse_bytes(settings["memory"])  # PBS's GB is GiB
    assert f"-l walltime={settings['walltime']}" in directives
    assert all(extra in directives for extra in settings["job-extra-directives"])
    check_worker_command(text, settings)


def test_sbatch_script_runs_the_launcher(tmp_path):
    text = (CLUSTER / "jobqueue" / "engine-batch.sbatch").read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    first_command = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    # SLURM reads #SBATCH lines only above the first command.
    assert all(not line.startswith("#SBATCH") for line in lines[first_command:])
    assert {"--time", "--mem", "--job-name"} <= {line.split()[1].split("=")[0] for line in lines[:first_command]
                                                 if line.startswith("#SBATCH")}
    # Outside SLURM (no sbatch on PATH) it gets as far as the launcher, which says why it stops.
    done = subprocess.run([shutil.which("bash"), str(CLUSTER / "jobqueue" / "engine-batch.sbatch"), str(tmp_path / "in.csv"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PATH": str(tmp_path), "SLURM_SUBMIT_DIR": str(ROOT)})
    assert done.returncode == 5
    assert "no `sbatch` command here" in done.stderr


# --- Kubernetes (dask-kubernetes operator) --------------------------------------------

def load_k8s(name: str) -> list[dict]:
    return list(yaml.safe_load_all((CLUSTER / "kubernetes" / name).read_text()))


def operator_schema(kind: str) -> dict:
    """The openAPIV3Schema of the operator's CRD for `kind`, as shipped with dask-kubernetes."""
    import dask_kubernetes

    crds = Path(dask_kubernetes.__file__).parent / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
    crd = yaml.load((crds / f"{kind.lower()}.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def unknown_fields(document, schema: dict, path: str = "") -> list[str]:
    """Fields the schema does not declare (what `kubectl apply --validate=strict` rejects)."""
    if isinstance(document, dict) and "properties" in schema:
        return [found for key, value in document.items()
                for found in ([f"{path}.{key}"] if key not in schema["properties"]
                              else unknown_fields(value, schema["properties"][key], f"{path}.{key}"))]
    if isinstance(document, list) and "items" in schema:
        return [found for i, item in enumerate(document) for found in unknown_fields(item, schema["items"], f"{path}[{i}]")]
    return []


def k8s_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[:-len(suffix)]) * factor)
    return int(quantity)


def check_worker_sizing(worker: dict) -> None:
    (container,) = worker["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["dask", "worker"]
    assert parse_bytes(option(args, "--memory-limit")) == k8s_bytes(container["resources"]["limits"]["memory"])
    assert int(option(args, "--nthreads")) == int(container["resources"]["limits"]["cpu"])


def test_kubernetes_resources_match_the_operator_schemas():
    import jsonschema

    for name in ("daskjob.yaml", "daskcluster.yaml"):
        for document in load_k8s(name):
            assert document["apiVersion"] == "kubernetes.dask.org/v1"
            schema = operator_schema(document["kind"])
            body = {key: value for key, value in document.items() if key not in ("apiVersion", "kind", "metadata")}
            jsonschema.validate(body, schema)
            assert unknown_fields(body, schema) == [], name


def test_daskjob_runs_the_engine_on_its_cluster():
    from dask_kubernetes.operator import make_cluster_spec

    (job,) = load_k8s("daskjob.yaml")
    assert job["kind"] == "DaskJob"
    pod = job["spec"]["job"]["spec"]
    (runner,) = pod["containers"]
    assert pod["restartPolicy"] == "Never"
    args = runner["args"]
    assert args[:2] == ["engine", "run"]
    assert option(args, "--mode") == "distributed"
    assert option(args, "--scheduler") == "$(DASK_SCHEDULER_ADDRESS)"  # set by the operator, expanded by Kubernetes

    cluster = job["spec"]["cluster"]["spec"]
    check_worker_sizing(cluster["worker"])
    images = {c["image"] for spec in (pod, cluster["worker"]["spec"], cluster["scheduler"]["spec"])
              for c in spec["containers"]}
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert images == {f"registry.example.com/sales-engine:{version}"}  # what `make image` tags

    # Input and output on one claim: the job pod writes, the workers read.
    claims = {v["persistentVolumeClaim"]["claimName"] for spec in (pod, cluster["worker"]["spec"])
              for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"sales-data"}
    (worker,) = cluster["worker"]["spec"]["containers"]
    assert {m["name"]: m.get("readOnly", False) for m in worker["volumeMounts"]}["sales-data"] is True
    input_path = Path(args[2])
    assert any(input_path.is_relative_to(m["mountPath"]) for m in worker["volumeMounts"])
    assert any(Path(option(args, "--output")).is_relative_to(m["mountPath"]) for m in runner["volumeMounts"])

    # The operator's own spec builder agrees on the scheduler's service (internal) and ports.
    reference = make_cluster_spec(name=job["metadata"]["name"], image="x", n_workers=cluster["worker"]["replicas"])
    assert cluster["scheduler"]["service"] == reference["spec"]["scheduler"]["service"]
    assert cluster["scheduler"]["service"]["type"] == "ClusterIP"
    (ours,), (theirs,) = cluster["scheduler"]["spec"]["containers"], reference["spec"]["scheduler"]["spec"]["containers"]
    assert ours["ports"] == theirs["ports"]
    assert (ours["readinessProbe"], ours["livenessProbe"]) == (theirs["readinessProbe"], theirs["livenessProbe"])
    assert worker["ports"] == reference["spec"]["worker"]["spec"]["containers"][0]["ports"]
    assert option(worker["args"], "--name") == "$(DASK_WORKER_NAME)"


def test_daskcluster_for_long_lived_use():
    from dask_kubernetes.operator import make_cluster_spec

    cluster, autoscaler = load_k8s("daskcluster.yaml")
    assert (cluster["kind"], autoscaler["kind"]) == ("DaskCluster", "DaskAutoscaler")
    assert autoscaler["spec"]["cluster"] == cluster["metadata"]["name"]
    check_worker_sizing(cluster["spec"]["worker"])
    reference = make_cluster_spec(name=cluster["metadata"]["name"], image="x")
    assert cluster["spec"]["scheduler"]["service"] == reference["spec"]["scheduler"]["service"]


# --- SSH (SSHCluster) ---------------------------------------------------------------

def test_ssh_dry_run_prints_the_plan():
    settings = yaml.safe_load((CLUSTER / "ssh" / "ssh-cluster.yaml").read_text())
    done = subprocess.run([sys.executable, str(CLUSTER / "ssh" / "run_on_ssh.py"), "/shared/sales/", "--dry-run"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    plan = yaml.safe_load(done.stdout)
    first, *others = settings["hosts"]
    assert plan["scheduler"]["host"] == first
    assert plan["scheduler"]["options"]["host"] == first  # bound to that address, not every interface
    assert plan["scheduler"]["options"]["dashboard_address"].startswith("127.0.0.1:")
    assert [w["host"] for w in plan["workers"]] == others
    assert all(w["options"] == settings["worker_options"] for w in plan["workers"])
    assert plan["ssh"]["remote_python"] == settings["remote_python"]
    assert plan["engine"] == {"input": "/shared/sales/", "output": None, "config": None, "mode": "distributed"}


class LocalSshServer:
    """A real SSH server (asyncssh) on 127.0.0.1, with its own host key and one authorised
    client key, running each command with the local shell (as sshd does)."""

    def __init__(self, folder: Path) -> None:
        import asyncssh

        host_key, client_key = asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = folder / "id_ed25519"
        client_key.write_private_key(str(self.client_key))
        self.children: list[asyncio.subprocess.Process] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def listen():
            return await asyncssh.listen(
                "127.0.0.1", 0, server_host_keys=[host_key], process_factory=self._run,
                authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()))

        self.server = self._call(listen())
        self.port = self.server.sockets[0].getsockname()[1]
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key.export_public_key().decode()}")

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    async def _run(self, process) -> None:
        pipe = asyncio.subprocess.PIPE
        child = await asyncio.create_subprocess_shell(process.command, stdin=pipe, stdout=pipe, stderr=pipe,
                                                      start_new_session=True)
        self.children.append(child)
        await process.redirect(stdin=child.stdin, stdout=child.stdout, stderr=child.stderr)
        ended = asyncio.ensure_future(child.wait())
        await asyncio.wait([ended, asyncio.ensure_future(process.wait_closed())],
                           return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            process.exit(ended.result())
        else:  # the client hung up: end what it started
            os.killpg(child.pid, signal.SIGTERM)

    def close(self) -> None:
        for child in self.children:
            if child.returncode is None:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.server.close()
        self._call(self.server.wait_closed())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_ssh_cluster_runs_the_engine(tmp_path):
    server = LocalSshServer(tmp_path)
    try:
        settings = {
            "hosts": ["127.0.0.1", "127.0.0.1"],
            "connect_options": {"port": server.port, "known_hosts": str(server.known_hosts),
                                "client_keys": [str(server.client_key)], "username": "engine"},
            "remote_python": sys.executable,
            "scheduler_options": {"port": 0, "dashboard_address": "127.0.0.1:0"},
            "worker_options": {"n_workers": 2, "nthreads": 1, "local_directory": str(tmp_path / "spill")},
        }
        ssh_config = tmp_path / "ssh.yaml"
        ssh_config.write_text(yaml.safe_dump(settings))
        done = subprocess.run([sys.executable, str(CLUSTER / "ssh" / "run_on_ssh.py"), str(small_input(tmp_path)),
                               "--output", str(tmp_path / "out"), "--ssh-config", str(ssh_config)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads((tmp_path / "out" / "run_report.json").read_text())
        assert report["backend"]["scheduler"].startswith("tcp://127.0.0.1:")
        assert report["backend"]["workers"] == 2
    finally:
        server.close()
