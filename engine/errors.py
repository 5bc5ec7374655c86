"""The errors a run can end with, each with its own process exit code.

Expected failures (bad input, bad configuration, an unreachable cluster) are reported as
one line naming what is wrong; only unexpected errors deserve a traceback.
"""

from __future__ import annotations


class EngineError(Exception):
    """A failure the engine explains in one line; `exit_code` is the process status."""

    exit_code = 1


class ConfigurationError(EngineError):
    """The command line or a configuration file is wrong (unknown key, bad value)."""

    exit_code = 2


class InputDataError(EngineError):
    """The input is missing, empty, unreadable, or lacks required columns."""

    exit_code = 3


class QualityAlertError(EngineError):
    """A data-quality alert fired and the configuration says alerts fail the run."""

    exit_code = 4


class ServiceError(EngineError):
    """A service the run needs is unreachable or refuses the run: the Dask cluster, object
    storage, a database."""

    exit_code = 5


class ClusterError(ServiceError):
    """The Dask cluster is unreachable, has no workers, or lost the work."""


class ResourceError(EngineError):
    """The run ran out of memory (or another machine resource)."""

    exit_code = 6


class LineageDeliveryError(EngineError):
    """Kept lineage events could not be delivered (the backend is still unavailable)."""

    exit_code = 7


class BackupError(EngineError):
    """A backup archive is corrupt, truncated or unsafe to restore, or a backup could not
    be taken consistently."""

    exit_code = 8


class OutputBusyError(EngineError):
    """Another run is writing to the same output folder (it holds `<output>/.lock`)."""

    exit_code = 9


UNEXPECTED_EXIT_CODE = 1
INTERRUPTED_EXIT_CODE = 130
