"""How a run is executed: on pandas, Dask or dask.distributed, within its memory, and
stopped cleanly when interrupted.

- `modes`: choosing the execution mode (for `auto`) and the partition size;
- `backends`: the pandas, Dask and dask.distributed backends (frames, graph adapters,
  clusters and clients);
- `frames`: the few frame operations whose spelling differs between pandas and Dask;
- `hamilton_dask`, `hamilton_stream`: Hamilton graph adapters for Dask DataFrames and
  pandas mode's partition streams;
- `allocator`: which allocators a run's buffers come from;
- `interrupts`: Ctrl-C and SIGTERM during a run.
"""
