"""Incremental runs: a run over several files keeps each file's partial figures, and the
next run reads only the files that are new or changed.

- `keys`: what a partial is valid for: the file's content (SHA-256), the code that
  computes partials, and every setting that changes them;
- `store`: the state folder (default `<output>/.state/`): one file per partial, written
  atomically, checked when read (a corrupt or foreign one is discarded with a warning),
  the manifest of the last run's files, `show` and `prune`;
- `distinct`: the distinct-record index, so that a run counts only the distinct records
  its new files add to those of earlier runs;
- `planning`: which files a run reads and which partials it reuses.
"""
