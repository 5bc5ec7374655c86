"""Where data lives besides local files, and the plug-in interface of sources and sinks.

- `plugins`: the Source and Sink interface, FinishedRun, and the registry that finds a
  source or sink by URL scheme (built-in ones and plug-ins);
- `locations`: a run's output location: a local folder, or an object-storage URL with a
  local work folder;
- `objects`: publishing a run's outputs to object storage (runs/<run id>/, then
  `_published.json`, then the published names);
- `postgresql_connection`: a PostgreSQL database as a URL names it (connecting, its name
  without the password, the driver's failures as the engine's exit codes), shared by:
- `postgresql`: the PostgreSQL source (partitioned reads from one snapshot);
- `postgresql_sink`: the PostgreSQL sink (every output of a run in one transaction).
"""
