"""Run the engine on SLURM or PBS: dask-jobqueue submits the Dask workers as batch jobs.

    python cluster/jobqueue/run_on_jobqueue.py slurm /shared/sales/ --output /shared/out --jobs 4
    python cluster/jobqueue/run_on_jobqueue.py pbs --print-job-script

The scheduler and the engine (the client, which writes the outputs) run in this process,
on a login node or inside a batch job of their own (engine-batch.sbatch); the workers are
the jobs. Job sizes, walltime, network interface and the rest come from jobqueue.yaml.
Exit status is the engine's (5 when no worker job starts in time).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import dask.config
import yaml

HERE = Path(__file__).resolve().parent
CLUSTERS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=CLUSTERS, help="the batch system")
    parser.add_argument("input", nargs="?", metavar="INPUT", help="on a filesystem every node mounts")
    parser.add_argument("--output", help="output directory (written by this process)")
    parser.add_argument("--config", metavar="FILE", help="the engine's YAML configuration")
    parser.add_argument("--jobs", type=int, default=2, help="worker jobs to submit (default 2)")
    parser.add_argument("--jobqueue-config", metavar="FILE", default=HERE / "jobqueue.yaml")
    parser.add_argument("--interface", help="network interface for scheduler and workers (default: the YAML's)")
    parser.add_argument("--wait", type=float, default=3600, metavar="SECONDS",
                        help="how long the queue may take to start the first worker job (default 3600)")
    parser.add_argument("--print-job-script", action="store_true", help="print a worker job script and exit")
    args = parser.parse_args(argv)
    if not (args.input or args.print_job_script):
        parser.error("INPUT is required (unless --print-job-script)")

    # Merge, not dask.config.set: set would replace the whole `jobqueue` section, dropping
    # the defaults (shebang, worker command, ...) this file does not repeat.
    dask.config.update(dask.config.config, yaml.safe_load(Path(args.jobqueue_config).read_text()))

    import dask_jobqueue

    cluster_class = getattr(dask_jobqueue, CLUSTERS[args.system])
    submit = cluster_class.job_cls.submit_command  # sbatch, qsub
    if not (args.print_job_script or shutil.which(submit)):  # fail now, not after --wait seconds
        print(f"error: no `{submit}` command here: run this where {args.system} jobs can be submitted",
              file=sys.stderr)
        return 5  # the engine's exit status for cluster errors

    with cluster_class(interface=args.interface) as cluster:  # starts the scheduler in this process
        if args.print_job_script:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=args.jobs)
        return run_engine(cluster.scheduler_address, args)


def run_engine(scheduler: str, args: argparse.Namespace) -> int:
    from distributed import Client

    from engine.cli import distributed_run_arguments, main as engine

    # The queue starts jobs when it pleases: wait for a worker here, with the queue's
    # patience, not in the engine, whose connect_timeout is meant for seconds.
    with Client(scheduler) as client:
        try:
            client.wait_for_workers(1, timeout=args.wait)
        except TimeoutError:
            print(f"error: no worker job started within {args.wait:g} s (see squeue / qstat and the logs in "
                  "the log-directory)", file=sys.stderr)
            return 5  # the engine's exit status for cluster errors
    return engine(distributed_run_arguments(args.input, scheduler, args.output, args.config))


if __name__ == "__main__":
    sys.exit(main())
