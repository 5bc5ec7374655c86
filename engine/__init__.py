"""Sales-analytics engine: one Hamilton dataflow on pandas, Dask and dask.distributed."""

__version__ = "0.1.0"
