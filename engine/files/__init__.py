"""How the engine writes its own files: safely, durably, with the permission policy.

Every module of the engine that creates, replaces, appends to or locks a file does it
through this package, so the rules are written once:

- `permissions`: the file and folder modes of everything the engine writes (the
  policy, `make_dirs`, `create_file`, `restrict`);
- `opening`: opening one of the engine's own files without following a symbolic link
  (a link planted in an output folder never redirects a write);
- `atomic`: a file replaced all or nothing (a temporary file beside it, fsynced, renamed
  over it, the folder fsynced), and `fsync_directory`;
- `locks`: the one file lock (flock(2), exclusive or shared, blocking or not) between
  processes;
- `append`: appending one line at a time to a log-like file (the run history, the
  lineage record, the audit log, the log file).
- `leftovers`: folders a killed run left behind (staging, input spool), removed by the
  next run;
- `digests`: SHA-256 of files and folders (the audit log, backup manifests, the
  incremental state's content keys).

It depends on nothing of the engine but `engine.errors`.
"""
