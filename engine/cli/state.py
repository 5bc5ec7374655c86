"""`engine state show` and `engine state prune`: the incremental state of an output folder
(engine.incremental)."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    state = commands.add_parser("state", help="the incremental state of an output folder: show or prune it")
    state_commands = state.add_subparsers(dest="state_command", required=True, parser_class=type(state))
    for name, text in (("show", "what the state holds: partials, bytes, the last run's files"),
                       ("prune", "remove the partials of files the last run did not have (--all: everything)")):
        sub = state_commands.add_parser(name, help=text)
        sub.add_argument("--output", default="output", help="the runs' output directory or URL (default: output)")
        sub.add_argument("--config", metavar="FILE", help="YAML configuration file (incremental.state_dir)")
        if name == "prune":
            sub.add_argument("--all", action="store_true", help="remove every partial: the next run reads every file")


def run_state_command(args: argparse.Namespace, say) -> int:
    from engine.config import load_config
    from engine.incremental.planning import state_dir
    from engine.incremental.store import StateStore
    from engine.outputs.publication import output_lock

    from engine.storage.locations import local_output_folder

    config = load_config(args.config)
    output = local_output_folder(args.output, args.config)
    store = StateStore(state_dir(config, output))
    if args.state_command == "show":
        summary = store.summary()
        say(f"state {summary.folder}: {summary.partials} partial(s), {summary.bytes:,} bytes; "
            f"the last run had {len(summary.files)} file(s)")
        for path, key in sorted(summary.files.items()):
            say(f"  {key[:12]}  {path}")
        return 0
    with output_lock(output, "state-prune"):  # never while a run writes the state
        keep = set() if args.all else set(store.manifest().values())
        removed, freed = store.prune(keep)
        if args.all:
            store.write_manifest({})
    say(f"removed {removed} partial(s), {freed:,} bytes")
    return 0
