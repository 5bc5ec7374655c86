"""What a run publishes, and how it is published.

- `forms`: the written forms of the outputs (CSV and Parquet tables, JSON documents,
  cell by cell: TABLE_COLUMNS, write_outputs);
- `early_write`: a large output written on a thread while the rest of the dataflow runs;
- `publication`: the staging folder, the atomic switch of `.current` to the new run,
  the output folder's lock, and the errors of writing into the output folder.
"""
