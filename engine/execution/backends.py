"""Execution backends: how a run's dataflow is executed.

A backend loads the read plan as a frame (pandas, or a partitioned Dask DataFrame),
gives Hamilton the graph adapter that fits it, and owns any resources it starts (a
LocalCluster, a client connection), releasing them on success, error and Ctrl-C.
"""

from __future__ import annotations

import abc
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from engine.errors import ClusterError
from engine.execution.interrupts import deferred, raise_if_interrupted
from engine.sources.plan import ReadPlan

log = logging.getLogger("engine.backends")  # the name in log lines, kept from before the package layout


class Backend(abc.ABC):
    """Base of the backends; a context manager around the resources a run needs."""

    name = "base"

    @abc.abstractmethod
    def load(self, plan: ReadPlan) -> Any:
        """The raw input as one frame: every read task exactly once."""

    @abc.abstractmethod
    def graph_adapter(self) -> Any:
        """The Hamilton graph adapter that executes nodes on this backend's frames."""

    def describe(self) -> dict:
        """What the run report says about this backend."""
        return {"mode": self.name}

    def memory_per_thread(self) -> int | None:
        """Memory a worker thread may use, when the backend knows a limit (None: this machine)."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the backend started (nothing by default)."""


class PandasBackend(Backend):
    """In-process pandas: the read tasks are read, validated and reduced one at a time
    (each parsed on Arrow's threads), so memory holds one partition."""

    name = "pandas"

    def __init__(self) -> None:
        #: told of every partition read, as observer(task) (progress)
        self.partition_observers: list[Any] = []

    def load(self, plan: ReadPlan) -> Any:
        from engine.execution.frames import PartitionStream

        return PartitionStream(plan.tasks, self._read)

    def _read(self, task: Any) -> pd.DataFrame:
        from engine.sources.readers import read_task

        frame = read_task(task, threads=True)
        for observe in self.partition_observers:
            observe(task)
        return frame

    def graph_adapter(self) -> Any:
        from engine.execution.hamilton_stream import PartitionStreamGraphAdapter

        return PartitionStreamGraphAdapter()


class DaskBackend(Backend):
    """Dask DataFrame on the local threaded scheduler: one partition per read task."""

    name = "dask"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._config: Any = None

    def load(self, plan: ReadPlan) -> Any:
        import dask.dataframe as dd

        from engine.sources.readers import empty_raw_frame, read_task

        return dd.from_map(read_task, list(plan.tasks), meta=empty_raw_frame(), enforce_metadata=False, label="read-sales")

    def graph_adapter(self) -> Any:
        from engine.execution.hamilton_dask import DaskFrameGraphAdapter

        return DaskFrameGraphAdapter()

    def describe(self) -> dict:
        return {"mode": self.name, "scheduler": "threads", "workers": self.workers}

    def __enter__(self) -> DaskBackend:
        import dask

        from engine.execution.allocator import favour_speed

        favour_speed()

        self._config = dask.config.set(scheduler="threads", num_workers=self.workers)
        self._config.__enter__()
        return self

    def close(self) -> None:
        if self._config is not None:
            self._config.__exit__(None, None, None)
            self._config = None


class DistributedBackend(DaskBackend):
    """Dask DataFrame on dask.distributed: an embedded LocalCluster bound to 127.0.0.1,
    or an existing scheduler when an address is given.

    Computations go through the backend's own scheduler function (`get`), which submits
    the graph with the configured task retries and watches the cluster while it runs: a
    cluster that has had no workers for `no_workers_timeout` seconds fails the run
    instead of leaving it waiting forever. Worker deaths are absorbed by Dask (the task
    is recomputed elsewhere) up to `allowed_failures` per task.
    """

    name = "distributed"

    def __init__(self, settings: Any) -> None:
        super().__init__(workers=settings.workers or min(os.cpu_count() or 1, 4))
        self.settings = settings
        self.scheduler = settings.scheduler
        self.cluster: Any = None
        self.client: Any = None
        #: told of every computation submitted, as observer(client, futures) (progress)
        self.compute_observers: list[Any] = []

    def graph_adapter(self) -> Any:
        from engine.execution.hamilton_dask import DaskFrameGraphAdapter

        return DaskFrameGraphAdapter(self.client)

    def describe(self) -> dict:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {}) if self.client is not None else {}
        return {
            "mode": self.name,
            "scheduler": self.scheduler or "embedded LocalCluster",
            "workers": len(workers),
            "threads": sum(w.get("nthreads", 0) for w in workers.values()),
            "dashboard": self.client.dashboard_link if self.client is not None else None,
            "tls": self.settings.tls,
        }

    def run_on_workers(self, function: Callable[[], Any]) -> dict[str, Any]:
        """`function()` run on every worker, its results keyed by worker address (the run's
        metrics measure each worker this way: engine.observability.metrics.process_usage);
        for a remote cluster the workers need the engine installed, as for any run."""
        return self.client.run(function) if self.client is not None else {}

    def memory_per_thread(self) -> int | None:
        """The smallest memory limit per worker thread in the cluster (None: no limits)."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {}).values()
        budgets = [w["memory_limit"] // max(w.get("nthreads", 1), 1) for w in workers if w.get("memory_limit")]
        return min(budgets) if budgets else None

    def __enter__(self) -> DistributedBackend:
        import dask
        from distributed import Client

        from engine.execution.allocator import favour_speed

        favour_speed()  # before the LocalCluster's workers inherit the environment
        where = self.scheduler or "the embedded LocalCluster"
        try:
            security = self._security()
            if self.scheduler:
                # Client() itself waits without limit for a peer that accepts but never
                # answers Dask's handshake, and trusts the length a peer's first bytes
                # announce: whatever listens there is first checked, within the timeout.
                probe_scheduler(self.scheduler, security, self.settings.connect_timeout)
                self.client = Client(self.scheduler, timeout=self.settings.connect_timeout, security=security,
                                     set_as_default=True)
            else:
                with deferred():  # a signal during the start would leave an unclosable cluster
                    self.cluster = self._local_cluster(security)
                    self.client = Client(self.cluster, set_as_default=True)
        except ClusterError:
            self.close()
            raise
        except (OSError, TimeoutError) as error:
            self.close()
            raise ClusterError(f"cannot reach the Dask scheduler at {where} within "
                               f"{self.settings.connect_timeout:g} s ({_first_line(error)})") from None
        except Exception as error:
            self.close()
            if not self.scheduler:
                raise
            raise ClusterError(f"cannot reach the Dask scheduler at {where} within "
                               f"{self.settings.connect_timeout:g} s (its answer is not Dask's: "
                               f"{type(error).__name__}: {_first_line(error)})") from None
        except BaseException:
            self.close()
            raise
        try:
            self.client.wait_for_workers(1, timeout=self.settings.connect_timeout)
        except TimeoutError:
            self.close()
            raise ClusterError(f"the Dask scheduler at {where} has no workers "
                               f"(waited {self.settings.connect_timeout:g} s)") from None
        self._config = dask.config.set(scheduler=self.get)
        self._config.__enter__()
        info = self.describe()
        log.info("dask.distributed: %s, %d worker(s), %d thread(s); dashboard %s",
                 info["scheduler"], info["workers"], info["threads"], info["dashboard"])
        return self

    def get(self, graph: Any, keys: Any, **kwargs: Any) -> Any:
        """dask's scheduler interface: compute `keys` of `graph` on the cluster."""
        from distributed import futures_of, wait

        packed = self.client.get(graph, keys, sync=False, retries=self.settings.retries)
        futures = futures_of(packed)
        for observe in self.compute_observers:
            observe(self.client, futures)
        workerless_since = None
        while True:
            try:
                wait(futures, timeout=1.0)
            except TimeoutError:
                pass
            except KeyboardInterrupt:
                self.client.cancel(futures)
                raise
            raise_if_interrupted()
            if all(f.done() for f in futures) or any(f.status == "error" for f in futures):
                return self.client.gather(packed)
            if self.client.nthreads():
                workerless_since = None
                continue
            workerless_since = workerless_since or time.monotonic()
            if time.monotonic() - workerless_since > self.settings.no_workers_timeout:
                self.client.cancel(futures)
                raise ClusterError(f"the Dask cluster has had no workers for "
                                   f"{self.settings.no_workers_timeout:g} s; the run cannot finish")

    def _security(self) -> Any:
        from distributed.security import Security

        tls = self.settings.tls
        if tls == "temporary":
            return Security.temporary()
        if tls == "files":
            files = dict(tls_ca_file=self.settings.tls_ca_file, tls_client_cert=self.settings.tls_cert,
                         tls_client_key=self.settings.tls_key)
            if not self.scheduler:  # the embedded cluster's scheduler and workers use the same files
                files.update(tls_scheduler_cert=self.settings.tls_cert, tls_scheduler_key=self.settings.tls_key,
                             tls_worker_cert=self.settings.tls_cert, tls_worker_key=self.settings.tls_key)
            return Security(require_encryption=True, **files)
        return None

    def _local_cluster(self, security: Any) -> Any:
        import dask
        from distributed import LocalCluster

        # The scheduler runs in this process and reads allowed-failures when it starts.
        with dask.config.set({"distributed.scheduler.allowed-failures": self.settings.allowed_failures}):
            return LocalCluster(
                n_workers=self.workers,
                threads_per_worker=self.settings.threads_per_worker,
                processes=True,
                memory_limit=self.settings.memory_limit,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # the scheduler's HTTP server: loopback, any free port
                local_directory=self.settings.local_directory,
                security=security,
                protocol="tls://" if security is not None else None,
            )

    def close(self) -> None:
        super().close()
        for resource in (self.client, self.cluster):
            if resource is not None:
                try:
                    resource.close()
                except Exception as error:  # closing must not hide the run's own outcome
                    log.warning("closing %s failed: %s", type(resource).__name__, _first_line(error))
        self.client = self.cluster = None


def probe_scheduler(address: str, security: Any, timeout: float) -> None:
    """Raise ClusterError unless a Dask peer at `address` completes Dask's comm handshake
    (connect, exchange of handshake messages) within `timeout` seconds.

    Whatever listens there (an HTTP server, a dashboard, a peer that says nothing, closes
    at once or sends garbage) fails this check within the timeout: the handshake runs on
    its own event loop in a daemon thread under one overall deadline, and every error of
    it, an impossible frame length's MemoryError included, is a ClusterError naming the
    address."""
    import asyncio
    import threading

    if address.startswith("inproc://"):  # a scheduler in this very process: nothing to probe
        return
    outcome: dict[str, BaseException] = {}

    async def handshake() -> None:
        from distributed.comm import connect
        from distributed.security import Security

        arguments = (security or Security()).get_connection_args("client")
        comm = await connect(address, timeout=timeout, **arguments)
        try:
            await comm.close()
        except Exception:  # the handshake is what counts
            pass

    def attempt() -> None:
        try:
            asyncio.run(asyncio.wait_for(handshake(), timeout))
        except BaseException as error:  # reported to the caller
            outcome["error"] = error

    thread = threading.Thread(target=attempt, name="engine-scheduler-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5)  # the deadline is inside; this bounds a stuck loop as well
    error = outcome.get("error")
    if thread.is_alive() or isinstance(error, TimeoutError):
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                           f"(no Dask handshake: whatever listens there does not answer as a Dask scheduler)")
    if isinstance(error, OSError):
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                           f"({_first_line(error)})")
    if error is not None:
        log.debug("the Dask handshake with %s failed: %r", address, error)
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                           f"(whatever listens there does not speak Dask's protocol: its answer is not "
                           f"a Dask handshake)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
