"""The input side: where the sales data comes from and how it is read.

- `plan`: resolving INPUT into files, checking each one, and cutting it into read tasks
  (find_files, plan_reads, SourceFile, ReadTask, ReadPlan);
- `object_store`: files on object storage (S3, GCS, Azure through fsspec): the
  filesystem of a URL, listing, opening, and the store's failures as the engine's errors;
- `layout`: the field delimiter and column names of inputs that differ from SPEC's CSV;
- `readers`: reading one read task (a partition) into a frame of raw text columns;
- `spool`: compressed inputs, decompressed once into a spool folder and read like plain
  CSV;
- `generate`: sample sales data with the dirt real inputs have (`engine generate`, the
  benchmarks and the tests).
"""
