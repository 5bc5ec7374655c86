"""Execution backends: how a run's dataflow is executed.

A backend loads the read plan as a frame (pandas, or a partitioned Dask DataFrame),
gives Hamilton the graph adapter that fits it, and owns any resources it starts (a
LocalCluster, a client connection), releasing them on success, error and Ctrl-C.
"""

from __future__ import annotations

import abc
import logging
import os
from typing import Any

import pandas as pd

from engine.errors import ClusterError
from engine.sources import ReadPlan

log = logging.getLogger(__name__)


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

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the backend started (nothing by default)."""


class PandasBackend(Backend):
    """In-process pandas: the read tasks are read in turn and joined into one frame."""

    name = "pandas"

    def load(self, plan: ReadPlan) -> pd.DataFrame:
        from engine.frames import concat
        from engine.readers import read_task

        return concat([read_task(task) for task in plan.tasks])

    def graph_adapter(self) -> Any:
        from hamilton import base

        return base.SimplePythonGraphAdapter(base.DictResult())


class DaskBackend(Backend):
    """Dask DataFrame on the local threaded scheduler: one partition per read task."""

    name = "dask"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._config: Any = None

    def load(self, plan: ReadPlan) -> Any:
        import dask.dataframe as dd

        from engine.readers import empty_raw_frame, read_task

        return dd.from_map(read_task, list(plan.tasks), meta=empty_raw_frame(), enforce_metadata=False, label="read-sales")

    def graph_adapter(self) -> Any:
        from engine.hamilton_dask import DaskFrameGraphAdapter

        return DaskFrameGraphAdapter()

    def describe(self) -> dict:
        return {"mode": self.name, "scheduler": "threads", "workers": self.workers}

    def __enter__(self) -> DaskBackend:
        import dask

        self._config = dask.config.set(scheduler="threads", num_workers=self.workers)
        self._config.__enter__()
        return self

    def close(self) -> None:
        if self._config is not None:
            self._config.__exit__(None, None, None)
            self._config = None


class DistributedBackend(DaskBackend):
    """Dask DataFrame on dask.distributed: an embedded LocalCluster bound to 127.0.0.1,
    or an existing scheduler when an address is given."""

    name = "distributed"

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        threads_per_worker: int = 1,
        memory_limit: str | int = "auto",
        connect_timeout: float = 10.0,
        local_directory: str | None = None,
    ) -> None:
        super().__init__(workers=workers or min(os.cpu_count() or 1, 4))
        self.scheduler = scheduler
        self.threads_per_worker = threads_per_worker
        self.memory_limit = memory_limit
        self.connect_timeout = connect_timeout
        self.local_directory = local_directory
        self.cluster: Any = None
        self.client: Any = None

    def graph_adapter(self) -> Any:
        from engine.hamilton_dask import DaskFrameGraphAdapter

        return DaskFrameGraphAdapter(self.client)

    def describe(self) -> dict:
        info = self.client.scheduler_info() if self.client is not None else {}
        return {
            "mode": self.name,
            "scheduler": self.scheduler or "embedded LocalCluster",
            "workers": len(info.get("workers", {})),
            "dashboard": getattr(self.client, "dashboard_link", None) if self.client else None,
        }

    def __enter__(self) -> DistributedBackend:
        from distributed import Client

        # Each exact-distinct reduction is a P2P shuffle; the scheduler logs every one at WARNING.
        logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)

        try:
            if self.scheduler:
                self.client = Client(self.scheduler, timeout=self.connect_timeout, set_as_default=True)
            else:
                self.cluster = self._local_cluster()
                self.client = Client(self.cluster, set_as_default=True)
            self.client.wait_for_workers(1, timeout=self.connect_timeout)
        except (OSError, TimeoutError) as error:
            self.close()
            where = self.scheduler or "the embedded LocalCluster"
            raise ClusterError(f"cannot use the Dask scheduler at {where}: {error}") from None
        except BaseException:
            self.close()
            raise
        log.info("dask.distributed: %s", self.describe())
        return self

    def _local_cluster(self) -> Any:
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=self.workers,
            threads_per_worker=self.threads_per_worker,
            processes=True,
            memory_limit=self.memory_limit,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # the scheduler's HTTP server: loopback, any free port
            local_directory=self.local_directory,
        )

    def close(self) -> None:
        for resource in (self.client, self.cluster):
            if resource is not None:
                try:
                    resource.close()
                except Exception as error:  # closing must not hide the run's own outcome
                    log.warning("closing %s failed: %s", type(resource).__name__, error)
        self.client = self.cluster = None
