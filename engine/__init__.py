"""Sales-analytics engine: one Hamilton dataflow on pandas, Dask and dask.distributed."""

import os

__version__ = "0.1.0"

# Hamilton imports a plugin for every library it finds installed (Dask, Polars,
# matplotlib, ...) on first use: over a second of start-up the engine does not need.
# The Dask adapter is imported explicitly where it is used.
os.environ.setdefault("HAMILTON_AUTOLOAD_EXTENSIONS", "0")
