"""The `engine` command (also `python -m engine`): a thin layer over the Python API
(engine.run, engine.sources.generate, engine.governance, engine.lineage).

This package's own file holds the argument parser and every subcommand (`main` is the
console script); `debugging` holds `engine dag` and `engine run --until NODE`; `state`
holds `engine state show` and `engine state prune` (the incremental state).

Exit status: 0 success; 2 usage or configuration error; 3 input error; 4 data-quality
alert with fail_on_alert; 5 cluster error; 6 out of memory; 7 lineage events still
undelivered after `engine lineage replay`; 8 a backup archive is corrupt, truncated or unsafe;
1 unexpected error; 130 interrupted (Ctrl-C, SIGINT); 143 terminated (SIGTERM, as systemd and Kubernetes
stop a process: the run ends as after Ctrl-C). Expected errors print one line on stderr; `--debug` adds the
traceback. That outcome line is the last thing a command prints (the cluster's teardown logs come before it),
and the last line of the log file the command opened (a run's pipeline.log); with `--log-format json` it
is a JSON object like every other log line, with `exit_code`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from engine.errors import (UNEXPECTED_EXIT_CODE, ConfigurationError, EngineError,
                           LineageDeliveryError)
from engine.files.permissions import DEFAULT_MODES, apply_policy

log = logging.getLogger("engine.cli")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are ConfigurationErrors (exit 2, one line)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigurationError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    parser = _Parser(prog="engine", description="Sales-analytics engine (Hamilton on pandas / Dask).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the engine's version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run the pipeline on INPUT")
    run.add_argument("input", metavar="INPUT",
                     help="a CSV/Parquet file, a quoted glob, a directory, or - (CSV on standard input)")
    run.add_argument("--output", help="output directory, or an object-storage URL such as s3://bucket/reports "
                                      "(default: output)")
    run.add_argument("--mode", choices=("auto", "pandas", "dask", "distributed"),
                     help="pandas: in process; dask: local threads; distributed: a LocalCluster or --scheduler; "
                          "auto (default): pandas for small inputs, dask otherwise, distributed with a scheduler")
    run.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler")
    run.add_argument("--workers", type=int, help="workers (dask threads, or LocalCluster processes)")
    run.add_argument("--partition-size", metavar="SIZE", help="input bytes per partition, e.g. 64MiB")
    run.add_argument("--module", action="append", metavar="PATH_OR_MODULE", dest="modules",
                     help="add a module's functions to the dataflow as nodes, published with the outputs "
                          "(a .py path or an importable name; repeatable)")
    run.add_argument("--skip-malformed-lines", action="store_const", const="skip", dest="malformed_lines",
                     help="leave out CSV lines with a wrong number of fields (listed in rejected_rows.parquet)")
    run.add_argument("--full", action="store_const", const=True, dest="full",
                     help="read every file and rebuild the incremental state (a folder or glob input "
                          "otherwise reads only new and changed files)")
    run.add_argument("--delimiter", metavar="CHAR",
                     help="the field delimiter of CSV inputs: one character, or tab (default: ,)")
    run.add_argument("--columns", metavar="COLUMN=HEADER,...",
                     help="the header names of columns named otherwise, e.g. date=Date,amount=Total")
    run.add_argument("--nominal-time", metavar="TIME",
                     help="the time an orchestrator scheduled this run for, ISO 8601 (START or START/END), "
                          "recorded in the lineage")
    run.add_argument("--table", metavar="NAME", help="with a database INPUT: the table to read ([schema.]table)")
    run.add_argument("--query", metavar="SQL", help="with a database INPUT: a SELECT giving the input's columns")
    run.add_argument("--sink", metavar="URL", help="also write the outputs to this database, e.g. "
                                                   "postgresql://user@host:5432/db")
    run.add_argument("--plugin", action="append", metavar="MODULE_OR_PATH", dest="plugins",
                     help="a plug-in module that registers sources or sinks (repeatable)")
    run.add_argument("--config", metavar="FILE", help="YAML configuration file")
    run.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    run.add_argument("--log-format", choices=("text", "json"), help="json: one JSON object per log line")
    run.add_argument("--log-file", metavar="FILE", help="the run's log file (default: OUTPUT/pipeline.log)")
    run.add_argument("--progress", choices=("auto", "log", "off"),
                     help="auto: a live line on a terminal, log lines otherwise (default)")
    run.add_argument("--until", metavar="NODE", help="run up to this dataflow node, print its result, write nothing")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logs")

    dag = commands.add_parser("dag", help="write the dataflow graph (DOT; SVG/PNG/PDF with Graphviz)")
    dag.add_argument("--output", metavar="FILE", help="a .dot, .svg, .png or .pdf file (default: DOT on stdout)")
    dag.add_argument("--module", action="append", metavar="PATH_OR_MODULE", dest="modules", default=[],
                     help="show a user module's nodes too (as for engine run; repeatable)")

    lineage = commands.add_parser("lineage", help="the OpenLineage events of runs")
    lineage_commands = lineage.add_subparsers(dest="lineage_command", required=True, parser_class=_Parser)
    for name, text in (("replay", "deliver the events kept while the lineage backend was unavailable"),
                       ("show", "print the last run's lineage: inputs, job, outputs, column sources")):
        sub = lineage_commands.add_parser(name, help=text)
        sub.add_argument("--output", default="output", help="the run's output directory or URL (default: output)")
        sub.add_argument("--config", metavar="FILE", help="YAML configuration file (lineage.timeout)")

    from engine.cli.state import add_parser as add_state_parser

    add_state_parser(commands)

    anonymize = commands.add_parser("anonymize", help="copy a dataset with customer ids pseudonymised (keyed HMAC)")
    anonymize.add_argument("input", metavar="INPUT", help="a CSV/Parquet file, a quoted glob, or a directory")
    anonymize.add_argument("output", metavar="OUTPUT", help="the copy: .parquet for Parquet, otherwise CSV")
    anonymize.add_argument("--mode", choices=("auto", "pandas", "dask", "distributed"))
    anonymize.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler")
    anonymize.add_argument("--workers", type=int, help="workers (dask threads, or LocalCluster processes)")
    anonymize.add_argument("--partition-size", metavar="SIZE", help="input bytes per partition, e.g. 64MiB")
    anonymize.add_argument("--config", metavar="FILE", help="YAML configuration file")

    generate = commands.add_parser("generate", help="write a realistic sample sales dataset")
    generate.add_argument("output", metavar="OUTPUT",
                          help="the file: .csv (.csv.gz / .csv.zst compressed) or .parquet")
    generate.add_argument("--rows", type=int, required=True, metavar="N",
                          help="how many sales rows to write (dirty ones and duplicates included)")
    generate.add_argument("--seed", type=int, default=0, help="the same seed gives the same file (default: 0)")

    _add_audit_parser(commands)
    _add_backup_parser(commands)
    return parser


def _add_audit_parser(commands) -> None:
    audit = commands.add_parser(
        "audit", help="print the audit log (every run, anonymize, backup, restore, prune)",
        description="The audit log is audit.path, by default $XDG_STATE_HOME/sales-engine/audit.jsonl "
                    "(~/.local/state/sales-engine/audit.jsonl): one log per OS user, holding that user's "
                    "commands from every folder; --output picks one output folder's runs.")
    audit.add_argument("--operation", help="run, anonymize, backup (all backup operations) or backup.create, ...")
    audit.add_argument("--user", help="OS user name")
    audit.add_argument("--outcome", choices=("success", "failed", "interrupted"))
    audit.add_argument("--run-id", metavar="ID", help="a run id or its beginning")
    audit.add_argument("--output", metavar="FOLDER", help="only the runs that wrote to this output folder")
    audit.add_argument("--since", metavar="WHEN", help="from this date (YYYY-MM-DD) or ISO time, UTC")
    audit.add_argument("--until", metavar="WHEN", help="before this ISO time, or up to the end of this date, UTC")
    audit.add_argument("--last", type=int, metavar="N", help="only the N most recent matching records")
    audit.add_argument("--json", action="store_true", help="print the matching records as JSON lines")
    audit.add_argument("--config", metavar="FILE", help="YAML configuration file (audit.path)")


def _add_backup_parser(commands) -> None:
    backup = commands.add_parser("backup", help="archives of the data and output folders")
    actions = backup.add_subparsers(dest="backup_command", required=True, parser_class=_Parser)
    create = actions.add_parser("create", help="archive the configured folders (backup.sources) now")
    create.add_argument("sources", nargs="*", metavar="FOLDER", help="folders to archive instead of backup.sources")
    actions.add_parser("list", help="the archives in the backup folder, oldest first")
    verify = actions.add_parser("verify", help="check archives against their checksum and manifest")
    verify.add_argument("archives", nargs="*", metavar="ARCHIVE", help="archive paths or names (default: all)")
    verify.add_argument("--latest", action="store_true", help="only the newest archive")
    restore = actions.add_parser("restore", help="restore an archive into a new or empty folder")
    restore.add_argument("archive", metavar="ARCHIVE", help="an archive path or name in the backup folder")
    restore.add_argument("--target", required=True, metavar="DIR", help="a new or empty folder")
    prune = actions.add_parser("prune", help="delete the archives the retention rule does not keep")
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    for key in ("daily", "weekly", "monthly"):
        prune.add_argument(f"--keep-{key}", type=int, metavar="N", help=f"override backup.keep_{key}")
    for action in actions.choices.values():
        action.add_argument("--directory", metavar="DIR", help="the backup folder (default: backup.directory)")
        action.add_argument("--config", metavar="FILE", help="YAML configuration file")


def distributed_run_arguments(source: str, scheduler: str, output: str | None = None, config: str | None = None
                              ) -> list[str]:
    """The `engine run` arguments of a launcher that has just started a cluster."""
    arguments = ["run", str(source), "--mode", "distributed", "--scheduler", scheduler]
    for flag, value in (("--output", output), ("--config", config)):
        if value:
            arguments += [flag, str(value)]
    return arguments


#: a command whose standard output was closed by its reader ends as one killed by SIGPIPE
BROKEN_PIPE_EXIT_CODE = 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    from engine.execution.allocator import return_freed_memory
    from engine.execution.interrupts import terminable
    from engine.observability.logs import log_files_opened

    return_freed_memory()
    owns_process = argv is None  # the `engine` command itself, not a caller in Python
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    apply_policy(DEFAULT_MODES)  # until a command applies the configured modes
    outcome = _Outcome(argv, owns_process, log_files_opened())
    with terminable():  # SIGTERM ends a command like Ctrl-C: records written, exit 143
        try:
            args = _parse_arguments(argv)
            return _COMMANDS[args.command](args)
        except EngineError as error:
            if debug:
                traceback.print_exc()
            return outcome.report(f"error: {error}", error.exit_code)
        except KeyboardInterrupt as error:
            from engine.execution.interrupts import Terminated, exit_code_of_interrupt

            text = "terminated (SIGTERM)" if isinstance(error, Terminated) else "interrupted"
            return outcome.report(text, exit_code_of_interrupt(error), level="WARNING")
        except BrokenPipeError:  # stdout's reader is gone (`engine lineage show | head`): as `yes | head`
            _silence_stdout()
            return BROKEN_PIPE_EXIT_CODE
        except Exception as error:  # the last line of defence: report, never crash silently
            if debug:
                traceback.print_exc()
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return outcome.report(f"unexpected error: {type(error).__name__}: {first_line} "
                                  "(rerun with --debug for the traceback)", UNEXPECTED_EXIT_CODE)


def _parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line parsed; words no option takes are a usage error, with a hint
    when they are the files of a glob the shell expanded for `engine run`."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}{_expanded_glob_hint(args, extra)}")
    return args


#: the endings of the files `engine run` reads
_INPUT_ENDINGS = (".csv", ".txt", ".tsv", ".gz", ".gzip", ".zst", ".zstd", ".parquet", ".pq")


def _expanded_glob_hint(args: argparse.Namespace, extra: Sequence[str]) -> str:
    """For `engine run` given several input files (an unquoted glob the shell expanded):
    how to quote the glob; empty otherwise."""
    if args.command != "run" or not all(_looks_like_a_file(word) for word in extra):
        return ""
    files = [args.input, *extra]
    folder = os.path.dirname(args.input)
    pattern = os.path.join(folder, "*" + _shared_extension(files))
    return (f" (engine run reads one INPUT; the shell expanded a glob into {len(files)} files: "
            f"quote the glob, e.g. engine run '{pattern}', or give the folder)")


def _looks_like_a_file(word: str) -> bool:
    return not word.startswith("-") and (os.path.lexists(word) or word.lower().endswith(_INPUT_ENDINGS))


def _shared_extension(paths: Sequence[str]) -> str:
    """The extension every path ends with (`.csv.gz`, `.csv`), or empty."""
    suffixes = Path(paths[0]).suffixes
    for extension in ("".join(suffixes[-2:]), "".join(suffixes[-1:])):
        if extension and all(path.endswith(extension) for path in paths):
            return extension
    return ""


class _Outcome:
    """How a command ends when it fails or is interrupted: its outcome line."""

    def __init__(self, argv: Sequence[str], owns_process: bool, log_files_before: int) -> None:
        self.argv = argv
        self.owns_process = owns_process  # the `engine` command itself, not a caller in Python
        self.log_files_before = log_files_before  # log files opened before the command started

    def report(self, message: str, exit_code: int, level: str = "ERROR") -> int:
        """Print the command's outcome line on stderr, last: after the child processes it
        started (a LocalCluster's workers) have exited and every log line is written, and
        with logging silenced afterwards (when the command owns the process, stderr itself is
        closed: a library's exit hook cannot print after it); masked, escaped, and JSON in the
        JSON log format. The command's log file (a run's pipeline.log) ends with the same line."""
        from engine.observability.logs import (end_log_file_with, log_files_opened, outcome_line,
                                               settle_output, silence_after_outcome)

        try:
            settle_output(timeout=20.0 if self.owns_process else 60.0, whole_tree=self.owns_process)
            line = outcome_line(message, exit_code, _requested_log_format(self.argv), level=level)
            print(line, file=sys.stderr, flush=True)
            if log_files_opened() > self.log_files_before:
                end_log_file_with(line)
        finally:
            silence_after_outcome(close_stderr=self.owns_process)
        return exit_code


def _requested_log_format(argv: Sequence[str]) -> str | None:
    """The log format asked for, when the command failed before setting up logging:
    `--log-format` on the command line, else ENGINE__LOG_FORMAT (None: the one in use)."""
    import os

    from engine.observability.logs import current_format

    if current_format() is not None:
        return current_format()
    for index, word in enumerate(argv):
        if word == "--log-format" and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith("--log-format="):
            return word.split("=", 1)[1]
    return os.environ.get("ENGINE__LOG_FORMAT", "").strip().lower() or None


def _say(text: str, file=None) -> None:
    """Print a console line (or lines): credentials masked, control characters escaped."""
    from engine.observability.logs import console_text

    print(console_text(text), file=file or sys.stdout)


def _apply_permissions(config) -> None:
    """The configured file and folder modes (and their umask) for the rest of the process."""
    from engine.files.permissions import apply_policy

    apply_policy(config.permissions.modes())


def _run(args: argparse.Namespace) -> int:
    from openlineage.client.uuid import generate_new_uuid as new_run_id

    from engine.config import load_config
    from engine.governance.audit import RunAuditHook, audited, describe_files
    from engine.observability.logs import bound_run_id, mask_credentials, setup_logging
    from engine.observability.progress import RunProgress
    from engine.outputs.publication import check_output_folder, output_errors
    from engine.run import run_pipeline
    from engine.storage.locations import output_location

    config = load_config(
        args.config,
        overrides={
            "input": args.input,
            "output": args.output,
            "mode": args.mode,
            "partition_size": args.partition_size,
            "malformed_lines": getattr(args, "malformed_lines", None),
            "incremental.full": args.full,
            "input_layout.delimiter": args.delimiter,
            "input_layout.columns": args.columns,
            "lineage.nominal_time": args.nominal_time,
            "log_level": "DEBUG" if args.debug else args.log_level,
            "log_format": args.log_format,
            "log_file": args.log_file,
            "progress.display": args.progress,
            "dataflow.modules": args.modules,
            "cluster.scheduler": args.scheduler,
            "cluster.workers": args.workers,
            "source.table": args.table,
            "source.query": args.query,
            "sink.url": args.sink,
            "plugins": args.plugins,
        },
    )
    _apply_permissions(config)
    if args.until:
        return _run_until(config, args.until)
    run_id = str(new_run_id())
    location = output_location(config)
    output_dir = location.folder
    check_output_folder(output_dir)
    log_file = Path(config.log_file).resolve() if config.log_file else output_dir / "pipeline.log"
    with audited("run", config.audit, run_id=run_id) as entry, bound_run_id(run_id):
        entry.details.update(source=mask_credentials(config.input), output=str(output_dir))
        if location.url:
            entry.details["output_url"] = location.url
        with output_errors(log_file.parent):
            setup_logging(config.log_level, log_file, config.log_format)  # the file's mode set on its descriptor
        progress = RunProgress(config.progress.display, config.progress.delay, config.progress.interval)
        audit_hook = RunAuditHook(entry, output_dir)
        try:
            result = run_pipeline(config, adapters=[audit_hook, progress], run_id=run_id)
        except BaseException:
            entry.outputs = audit_hook.published_despite_failure(run_id)
            raise
        finally:
            progress.close()
        entry.outputs = describe_files([f.path for f in result.files], published_to=location.url)
        entry.details["mode"] = result.mode
        _print_summary(result)
    return 0




def _print_summary(result) -> None:
    metrics = result.results["data_quality_metrics"]
    trend = result.results["trend_analysis"]
    lines = [
        f"run {result.run_id} ({result.mode} mode) finished in {result.report['duration_s']:.2f} s",
        f"  rows: {metrics['raw_record_count']:,} read, {metrics['cleaned_record_count']:,} kept, "
        f"{metrics['data_loss_rate']}% rejected, {metrics['duplicate_count']:,} duplicates",
        f"  days: {trend['days_analyzed']} from {metrics['date_range']['min']} to {metrics['date_range']['max']}; "
        f"best {trend['max_sales_date']} ({trend['max_sales_amount']})",
        f"  alerts: {', '.join(a['name'] for a in result.alerts) or 'none'}",
        f"  outputs: {result.output_shown or result.output_dir}"
        + (f" (local files in {result.output_dir})" if result.output_shown != str(result.output_dir) else ""),
    ]
    _say("\n".join(lines))


def _run_until(config, node: str) -> int:
    """`engine run INPUT --until NODE`: NODE's result summarised on stdout; nothing is
    published, and the log goes to the console only unless `log_file` is configured.
    It reads the input (personal data), so the audit log records it (`run.until`)."""
    from engine.cli.debugging import run_until
    from engine.governance.audit import RunAuditHook, audited
    from engine.observability.logs import mask_credentials, setup_logging
    from engine.observability.progress import RunProgress

    setup_logging(config.log_level, Path(config.log_file).resolve() if config.log_file else None, config.log_format)
    with audited("run.until", config.audit) as entry:
        entry.details.update(source=mask_credentials(config.input), node=node)
        progress = RunProgress(config.progress.display, config.progress.delay, config.progress.interval)
        try:  # the audit hook records the files the run resolved: the input is resolved once
            summary = run_until(config, node, adapters=[RunAuditHook(entry), progress])
        finally:
            progress.close()
    _say(summary)
    return 0


def _dag(args: argparse.Namespace) -> int:
    from engine.cli.debugging import dataflow_dot, write_dag

    modules = tuple(args.modules)
    if not args.output:
        sys.stdout.write(dataflow_dot(modules=modules))
        return 0
    written, note = write_dag(Path(args.output), modules)
    for path in written:
        _say(f"wrote {path}")
    if note:
        _say(f"note: {note}", file=sys.stderr)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from engine.outputs.publication import file_in_the_way
    from engine.sources.generate import generate_sales

    if args.rows < 1:
        raise ConfigurationError(f"--rows must be at least 1, got {args.rows}")
    blocker = file_in_the_way(Path(args.output))
    if blocker is not None:
        raise ConfigurationError(f"{args.output}: cannot write the file: {blocker} is a file, not a folder")
    try:
        summary = generate_sales(args.output, args.rows, seed=args.seed)
    except ValueError as error:  # an argument generate_sales refuses: a usage error
        raise ConfigurationError(f"{args.output}: {error}") from None
    except PermissionError as error:
        raise ConfigurationError(f"{args.output}: cannot write the file ({error.strerror}: {error.filename})") from None
    _say(f"wrote {summary.rows:,} rows ({summary.bytes_written / 2**20:.1f} MiB) to {summary.path}")
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from engine.lineage.delivery import configured_client, replay
    from engine.lineage.show import last_run_events, render

    from engine.storage.locations import local_output_folder

    output = local_output_folder(args.output, args.config)
    if args.lineage_command == "show":
        events = last_run_events(output)
        if not events:
            raise ConfigurationError(f"{output}: no lineage recorded here (run `engine run ... --output {output}` first)")
        _say(render(events))
        return 0
    from engine.config import load_config
    from engine.observability.logs import setup_logging

    config = load_config(args.config)
    _apply_permissions(config)
    setup_logging(config.log_level)
    client = configured_client()
    if client is None:
        raise ConfigurationError("no OpenLineage transport is configured (openlineage.yml, "
                                 "OPENLINEAGE__TRANSPORT__*, or OPENLINEAGE_URL): nothing to replay to")
    outcome = replay(output, client, deadline=config.lineage.timeout)
    refused = (f"; {outcome.rejected} refused for good by the backend (recorded in "
               f"{output / 'lineage' / 'rejected.jsonl'}, not sent again)" if outcome.rejected else "")
    _say(f"delivered {outcome.delivered} lineage event(s); {outcome.pending} still pending{refused}")
    if outcome.pending:
        raise LineageDeliveryError(f"{outcome.pending} lineage event(s) in {output / 'lineage'} "
                                   "could not be delivered yet")
    return 0


def _anonymize(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from engine.governance.anonymize import anonymize
    from engine.governance.audit import audited, describe_files
    from engine.observability.logs import setup_logging
    from engine.sources.plan import find_files

    config = load_config(args.config, overrides={
        "mode": args.mode,
        "partition_size": args.partition_size,
        "log_level": "DEBUG" if args.debug else None,
        "cluster.scheduler": args.scheduler,
        "cluster.workers": args.workers,
    })
    _apply_permissions(config)
    setup_logging(config.log_level)
    with audited("anonymize", config.audit) as entry:
        entry.details.update(source=args.input, output=str(Path(args.output).resolve()))
        entry.hash_inputs([f.path for f in find_files(args.input)])
        result = anonymize(args.input, args.output, config)
        entry.outputs = describe_files([result.path])
        entry.details["mode"] = result.mode
    _say(f"wrote {result.rows:,} rows with pseudonymised customer ids to {result.path} "
          f"({result.mode} mode, {result.partitions} partition(s))")
    for path in result.files_without_customer_id:
        _say(f"  {path}: no customer_id column; copied with customer_id empty")
    return 0


def _audit(args: argparse.Namespace) -> int:
    import json

    from engine.config import load_config
    from engine.governance.audit import audit_path, read_records
    from engine.governance.audit_table import AuditFilter, output_folder, parse_moment, render

    config = load_config(args.config)
    if args.last is not None and args.last < 1:
        raise ConfigurationError(f"--last must be at least 1, got {args.last}")
    selection = AuditFilter(
        operation=args.operation, user=args.user, outcome=args.outcome, run_id=args.run_id,
        output=output_folder(args.output) if args.output else None,
        since=parse_moment(args.since, "--since") if args.since else None,
        until=parse_moment(args.until, "--until", end_of_day=True) if args.until else None,
        last=args.last,
    )
    records = selection.apply(read_records(audit_path(config.audit.path)))
    if args.json:
        for record in records:
            print(json.dumps(record))
    else:
        _say(render(records))
    return 0


def _backup(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from engine.governance.backup_commands import run_backup_command
    from engine.observability.logs import setup_logging

    config = load_config(args.config, overrides={"backup.directory": args.directory,
                                                 "log_level": "DEBUG" if args.debug else None})
    _apply_permissions(config)
    setup_logging(config.log_level)
    return run_backup_command(args, config)


def _state(args: argparse.Namespace) -> int:
    from engine.cli.state import run_state_command

    return run_state_command(args, _say)


_COMMANDS = {"run": _run, "generate": _generate, "lineage": _lineage, "anonymize": _anonymize,
             "audit": _audit, "backup": _backup, "dag": _dag, "state": _state}


if __name__ == "__main__":
    sys.exit(main())
