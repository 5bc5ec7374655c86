"""The `engine` command: a thin layer over the Python API (engine.run, engine.generate).

Exit status: 0 success; 2 usage or configuration error; 3 input error; 4 data-quality
alert with fail_on_alert; 5 cluster error; 6 out of memory; 7 lineage events still
undelivered after `engine lineage replay`; 1 unexpected error; 130 interrupted. Expected errors print one line on stderr; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from engine.errors import (INTERRUPTED_EXIT_CODE, UNEXPECTED_EXIT_CODE, ConfigurationError, EngineError,
                           LineageDeliveryError)

log = logging.getLogger("engine.cli")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are ConfigurationErrors (exit 2, one line)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigurationError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="engine", description="Sales-analytics engine (Hamilton on pandas / Dask).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run the pipeline on INPUT")
    run.add_argument("input", metavar="INPUT", help="a CSV/Parquet file, a quoted glob, or a directory")
    run.add_argument("--output", help="output directory (default: output)")
    run.add_argument("--mode", choices=("auto", "pandas", "dask", "distributed"))
    run.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler")
    run.add_argument("--workers", type=int, help="workers (dask threads, or LocalCluster processes)")
    run.add_argument("--partition-size", metavar="SIZE", help="input bytes per partition, e.g. 64MiB")
    run.add_argument("--config", metavar="FILE", help="YAML configuration file")
    run.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    lineage = commands.add_parser("lineage", help="the OpenLineage events of runs")
    lineage_commands = lineage.add_subparsers(dest="lineage_command", required=True, parser_class=_Parser)
    for name, text in (("replay", "deliver the events kept while the lineage backend was unavailable"),
                       ("show", "print the last run's lineage: inputs, job, outputs, column sources")):
        sub = lineage_commands.add_parser(name, help=text)
        sub.add_argument("--output", default="output", help="the run's output directory (default: output)")
        sub.add_argument("--config", metavar="FILE", help="YAML configuration file (lineage.timeout)")

    anonymize = commands.add_parser("anonymize", help="copy a dataset with customer ids pseudonymised (keyed HMAC)")
    anonymize.add_argument("input", metavar="INPUT", help="a CSV/Parquet file, a quoted glob, or a directory")
    anonymize.add_argument("output", metavar="OUTPUT", help="the copy: .parquet for Parquet, otherwise CSV")
    anonymize.add_argument("--mode", choices=("auto", "pandas", "dask", "distributed"))
    anonymize.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler")
    anonymize.add_argument("--workers", type=int, help="workers (dask threads, or LocalCluster processes)")
    anonymize.add_argument("--partition-size", metavar="SIZE", help="input bytes per partition, e.g. 64MiB")
    anonymize.add_argument("--config", metavar="FILE", help="YAML configuration file")

    generate = commands.add_parser("generate", help="write a realistic sample sales dataset")
    generate.add_argument("output", metavar="OUTPUT", help="CSV path (.gz / .zst to compress)")
    generate.add_argument("--rows", type=int, required=True)
    generate.add_argument("--seed", type=int, default=0)
    return parser


def distributed_run_arguments(source: str, scheduler: str, output: str | None = None, config: str | None = None
                              ) -> list[str]:
    """The `engine run` arguments of a launcher that has just started a cluster."""
    arguments = ["run", str(source), "--mode", "distributed", "--scheduler", scheduler]
    for flag, value in (("--output", output), ("--config", config)):
        if value:
            arguments += [flag, str(value)]
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    from engine.allocator import release_freed_memory

    release_freed_memory()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except EngineError as error:
        if debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except Exception as error:  # the last line of defence: report, never crash silently
        if debug:
            traceback.print_exc()
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"unexpected error: {type(error).__name__}: {first_line} (rerun with --debug for the traceback)", file=sys.stderr)
        return UNEXPECTED_EXIT_CODE


def _run(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from engine.logs import setup_logging
    from engine.run import run_pipeline

    config = load_config(
        args.config,
        overrides={
            "input": args.input,
            "output": args.output,
            "mode": args.mode,
            "partition_size": args.partition_size,
            "log_level": "DEBUG" if args.debug else args.log_level,
            "cluster.scheduler": args.scheduler,
            "cluster.workers": args.workers,
        },
    )
    setup_logging(config.log_level, Path(config.output) / "pipeline.log")
    result = run_pipeline(config)
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
        f"  outputs: {result.output_dir}",
    ]
    print("\n".join(lines))


def _generate(args: argparse.Namespace) -> int:
    from engine.generate import generate_sales

    if args.rows < 1:
        raise ConfigurationError(f"--rows must be at least 1, got {args.rows}")
    summary = generate_sales(args.output, args.rows, seed=args.seed)
    print(f"wrote {summary.rows:,} rows ({summary.bytes_written / 2**20:.1f} MiB) to {summary.path}")
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from engine.lineage.delivery import configured_client, replay
    from engine.lineage.show import last_run_events, render

    output = Path(args.output)
    if args.lineage_command == "show":
        events = last_run_events(output)
        if not events:
            raise ConfigurationError(f"{output}: no lineage recorded here (run `engine run ... --output {output}` first)")
        print(render(events))
        return 0
    from engine.config import load_config
    from engine.logs import setup_logging

    config = load_config(args.config)
    setup_logging(config.log_level)
    client = configured_client()
    if client is None:
        raise ConfigurationError("no OpenLineage transport is configured (openlineage.yml, "
                                 "OPENLINEAGE__TRANSPORT__*, or OPENLINEAGE_URL): nothing to replay to")
    delivered, pending = replay(output, client, deadline=config.lineage.timeout)
    print(f"delivered {delivered} lineage event(s); {pending} still pending")
    if pending:
        raise LineageDeliveryError(f"{pending} lineage event(s) in {output / 'lineage'} could not be delivered yet")
    return 0


def _anonymize(args: argparse.Namespace) -> int:
    from engine.anonymize import anonymize
    from engine.config import load_config
    from engine.logs import setup_logging

    config = load_config(args.config, overrides={
        "mode": args.mode,
        "partition_size": args.partition_size,
        "log_level": "DEBUG" if args.debug else None,
        "cluster.scheduler": args.scheduler,
        "cluster.workers": args.workers,
    })
    setup_logging(config.log_level)
    result = anonymize(args.input, args.output, config)
    print(f"wrote {result.rows:,} rows with pseudonymised customer ids to {result.path} "
          f"({result.mode} mode, {result.partitions} partition(s))")
    for path in result.files_without_customer_id:
        print(f"  {path}: no customer_id column; copied with customer_id empty")
    return 0


_COMMANDS = {"run": _run, "generate": _generate, "lineage": _lineage, "anonymize": _anonymize}


if __name__ == "__main__":
    sys.exit(main())
