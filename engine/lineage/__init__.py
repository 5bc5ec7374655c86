"""OpenLineage for every run: what it read, what it wrote, how each column was derived.

- `naming`: dataset namespaces and names by the OpenLineage naming conventions;
- `columns`: the published schemas and the column lineage of every output;
- `events`: START / COMPLETE / FAIL run events built with the openlineage-python classes;
- `serialization`: an event as the JSON line the OpenLineage file transport writes, fast;
- `delivery`: the local record, the configured transport under a deadline, the outbox
  of undelivered events and their replay;
- `recorder`: the run's lineage, attached to the Hamilton driver as a lifecycle adapter;
- `show`: the last run's lineage in the terminal.
"""
