"""Run the engine on machines reached over SSH (distributed's SSHCluster).

    python cluster/ssh/run_on_ssh.py /shared/sales/ --output out
    python cluster/ssh/run_on_ssh.py /shared/sales/ --dry-run     # print the plan, connect to nothing

The hosts, SSH options and scheduler/worker options come from ssh-cluster.yaml (or
--ssh-config). SSHCluster starts the scheduler on the first host and the workers on
the others, and stops them all when the run ends; the engine runs here, as the client,
and writes the outputs here. Exit status is the engine's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def cluster_plan(settings: dict) -> dict:
    """SSHCluster's keyword arguments from the YAML settings."""
    hosts = settings["hosts"]
    if len(hosts) < 2:
        raise ValueError("hosts: list the scheduler's host, then at least one worker host")
    scheduler_options = dict(settings.get("scheduler_options") or {})
    if "host" not in scheduler_options and "interface" not in scheduler_options:
        scheduler_options["host"] = hosts[0]  # the address we reach it by, not every interface
    return {
        "hosts": hosts,
        "connect_options": settings.get("connect_options") or {},
        "scheduler_options": scheduler_options,
        "worker_options": settings.get("worker_options") or {},
        "remote_python": settings.get("remote_python"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", metavar="INPUT", help="a path every worker host can read")
    parser.add_argument("--output", help="output directory (written on this machine)")
    parser.add_argument("--config", metavar="FILE", help="the engine's YAML configuration")
    parser.add_argument("--ssh-config", metavar="FILE", default=HERE / "ssh-cluster.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    if not (args.input or args.dry_run):
        parser.error("INPUT is required (unless --dry-run)")
    plan = cluster_plan(yaml.safe_load(Path(args.ssh_config).read_text()))

    if args.dry_run:
        hosts = plan["hosts"]
        print(yaml.safe_dump({
            "scheduler": {"host": hosts[0], "options": plan["scheduler_options"]},
            "workers": [{"host": host, "options": dict(plan["worker_options"])} for host in hosts[1:]],
            "ssh": {"connect_options": plan["connect_options"], "remote_python": plan["remote_python"]},
            "engine": {"input": args.input, "output": args.output, "config": args.config, "mode": "distributed"},
        }, sort_keys=False), end="")
        return 0

    from distributed.deploy.ssh import SSHCluster

    from engine.cli import distributed_run_arguments, main as engine

    with SSHCluster(**plan) as cluster:  # returns once the scheduler and the workers are up
        return engine(distributed_run_arguments(args.input, cluster.scheduler_address, args.output, args.config))


if __name__ == "__main__":
    sys.exit(main())
