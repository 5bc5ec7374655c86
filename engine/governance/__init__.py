"""Operating the engine accountably: who ran what, anonymised copies, backups.

- `audit`: the installation's audit log (one JSON line per run, anonymize and backup
  command) and `audit_table`, its rendering for `engine audit`;
- `digests`: SHA-256 digests of files and listings, for the audit log and backups;
- `anonymize`: a copy of a dataset with customer ids pseudonymised (`engine anonymize`);
- `backups`: archives of the data and output folders, checked, restored, pruned
  (`backup_archive`: the archive format; `backup_commands`: `engine backup`;
  `retention`: which archives a prune keeps).

The permission policy of every file the engine writes is in engine.files.permissions,
the pseudonyms themselves in engine.rules.pseudonyms: both are used below this package.
"""
