"""The `engine backup create|list|verify|restore|prune` commands: configuration in,
one line per archive out; create, restore and prune are recorded in the audit log."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.config import EngineConfig
from engine.errors import BackupError, ConfigurationError, InputDataError
from engine.governance.audit import audited, describe_files
from engine.governance.audit_table import human_size
from engine.governance.backups import (Backup, create_backup, find_backup, list_backups, prune_backups,
                                       restore_backup, source_digest, verify)
from engine.governance.retention import RetentionPolicy


def run_backup_command(args: argparse.Namespace, config: EngineConfig) -> int:
    directory = Path(config.backup.directory)
    return _ACTIONS[args.backup_command](args, config, directory)


def _create(args: argparse.Namespace, config: EngineConfig, directory: Path) -> int:
    sources, origin = _sources_to_back_up(args, config)
    with audited("backup.create", config.audit) as entry:
        entry.details.update(directory=str(directory.resolve()), compression=config.backup.compression)
        created = create_backup(directory, sources, config.backup.compression, origin=origin)
        entry.inputs = [source_digest(s) for s in created.manifest["sources"]]
        entry.outputs = [{"path": str(created.path), "size": created.size, "sha256": created.sha256}]
    files = len(created.manifest["files"])
    print(f"wrote {created.path} ({files} files from {', '.join(str(s) for s in sources)}; {human_size(created.size)})")
    return 0


def _sources_to_back_up(args: argparse.Namespace, config: EngineConfig) -> tuple[list[Path], str]:
    """The folders to archive: those named on the command line, else `backup.sources`,
    else the output folder; and where they were named (for an error about one)."""
    if args.sources:
        return [Path(s) for s in args.sources], ""
    if config.backup.sources:
        return [Path(s) for s in config.backup.sources], "backup.sources"
    return [Path(config.output)], "the output folder, as backup.sources is empty"


def _list(args: argparse.Namespace, config: EngineConfig, directory: Path) -> int:
    backups = list_backups(directory)
    if not backups:
        print(f"no backups in {directory}")
        return 0
    for backup in backups:
        print(f"{backup.moment:%Y-%m-%d %H:%M:%S} UTC  {human_size(backup.size):>10}  {backup.name}")
    return 0


def _verify(args: argparse.Namespace, config: EngineConfig, directory: Path) -> int:
    if args.archives:
        archives = [find_backup(directory, name) for name in args.archives]
    else:
        backups = list_backups(directory)
        if not backups:
            raise InputDataError(f"{directory}: no backups to verify")
        archives = [b.path for b in (backups[-1:] if args.latest else backups)]
    failures = []
    for archive in archives:
        try:
            manifest = verify(archive)
        except BackupError as error:
            failures.append(str(error))
            print(f"FAILED  {archive.name}: {str(error).removeprefix(f'{archive}: ')}")
            continue
        print(f"ok      {archive.name}: {len(manifest['files'])} files")
    if failures:
        raise BackupError(failures[0] if len(failures) == 1 else
                          f"{len(failures)} of {len(archives)} backups failed verification; first: {failures[0]}")
    return 0


def _restore(args: argparse.Namespace, config: EngineConfig, directory: Path) -> int:
    with audited("backup.restore", config.audit) as entry:
        archive = find_backup(directory, args.archive)
        entry.details["target"] = str(Path(args.target).absolute())
        entry.inputs = describe_files([archive])
        restored = restore_backup(archive, Path(args.target))
        entry.outputs = restored.folders
    print(f"restored {len(restored.manifest['files'])} files from {archive.name} into {restored.target}")
    return 0


def _prune(args: argparse.Namespace, config: EngineConfig, directory: Path) -> int:
    settings = config.backup
    retention = RetentionPolicy(
        daily=settings.keep_daily if args.keep_daily is None else args.keep_daily,
        weekly=settings.keep_weekly if args.keep_weekly is None else args.keep_weekly,
        monthly=settings.keep_monthly if args.keep_monthly is None else args.keep_monthly,
    )
    if min(retention.daily, retention.weekly, retention.monthly) < 0:
        raise ConfigurationError("--keep-daily, --keep-weekly and --keep-monthly must be 0 or more")
    if args.dry_run:
        result = prune_backups(directory, retention, dry_run=True)
        _print_pruned(result.deleted, "would delete")
        print(f"would keep {len(result.kept)} backup(s)")
        return 0
    with audited("backup.prune", config.audit) as entry:
        entry.details.update(directory=str(directory.resolve()), keep_daily=retention.daily,
                             keep_weekly=retention.weekly, keep_monthly=retention.monthly)
        result = prune_backups(directory, retention)
        entry.details.update(deleted=[b.name for b in result.deleted], kept=[b.name for b in result.kept])
    _print_pruned(result.deleted, "deleted")
    print(f"kept {len(result.kept)} backup(s)")
    return 0


def _print_pruned(backups: list[Backup], verb: str) -> None:
    for backup in backups:
        print(f"{verb} {backup.name}")


_ACTIONS = {"create": _create, "list": _list, "verify": _verify, "restore": _restore, "prune": _prune}
