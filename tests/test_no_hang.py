"""Python 3.11 + LocalCluster: graphs built on sort_values/divisions could hang the client
(CPython gh-87634, a class-wide cached_property lock). The dataflow never sorts or
re-indexes a Dask collection (only the small, computed results are sorted), and a
distributed run in a fresh process finishes well within its time limit."""

from __future__ import annotations

import engine.execution.frames
from conftest import run_cli, run_engine, write_csv

ORDERING_EXPRESSIONS = {"SortValues", "SetIndex", "SetPartition", "SortIndex", "Repartition", "RepartitionQuantiles"}


def test_reductions_contain_no_sort_or_reindex(tmp_path, monkeypatch):
    seen = []
    real_reduce = engine.execution.frames.reduce_partitions

    def recording_reduce(frames, reduction):
        seen.extend(frames)
        return real_reduce(frames, reduction)

    monkeypatch.setattr(engine.execution.frames, "reduce_partitions", recording_reduce)
    source = write_csv(tmp_path / "s.csv", [("2024-01-0%d" % (i % 9 + 1), f"P{i % 4}", "1.5", "") for i in range(200)])
    run_engine(source, tmp_path / "out", mode="dask", partition_size="500B")
    assert seen and all(engine.execution.frames.is_lazy(frame) for frame in seen)
    kinds = {type(node).__name__ for collection in seen for node in collection.expr.walk()}
    assert "FromMap" in kinds  # the walk really covers the graph down to the read
    assert not kinds & ORDERING_EXPRESSIONS


def test_distributed_run_finishes_in_a_fresh_process(tmp_path):
    source = write_csv(tmp_path / "s.csv", [("2024-01-%02d" % (i % 28 + 1), f"P{i % 7}", "2.25", "C") for i in range(3000)])
    done = run_cli("run", str(source), "--output", str(tmp_path / "out"), "--mode", "distributed",
                   "--workers", "2", "--partition-size", "8KiB", timeout=240)
    assert done.returncode == 0, done.stderr
    assert "(distributed mode)" in done.stdout
