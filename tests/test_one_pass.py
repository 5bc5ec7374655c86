"""The input is read once per run, whatever the mode: every reduction shares one pass."""

from __future__ import annotations

from collections import Counter

import pytest

import engine.sources.readers
from conftest import run_engine


@pytest.mark.parametrize("mode", ["pandas", "dask"])
def test_each_partition_is_read_exactly_once(dirty_300k, tmp_path, monkeypatch, mode):
    reads = Counter()
    real_read_task = engine.sources.readers.read_task

    def counting_read_task(task, **options):
        reads[(task.file_index, task.offset)] += 1
        return real_read_task(task, **options)

    monkeypatch.setattr(engine.sources.readers, "read_task", counting_read_task)
    result = run_engine(dirty_300k, tmp_path, mode=mode, partition_size="1MiB")
    partitions = result.report["input"]["partitions"]
    assert partitions == -(-dirty_300k.stat().st_size // 2**20)
    assert len(reads) == partitions
    assert set(reads.values()) == {1}


def test_distributed_run_reads_each_partition_once(dirty_300k, tmp_path, external_cluster):
    from distributed import get_task_stream

    with external_cluster.client() as observer, get_task_stream(client=observer) as stream:
        result = run_engine(dirty_300k, tmp_path, mode="distributed", partition_size="1MiB", **external_cluster.settings())
    # Dask fuses each partition's read with the steps after it into one task named
    # after them all: "read-...-validate_rows-<token>", one key per partition.
    read_keys = [str(task["key"]) for task in stream.data if str(task["key"]).startswith("('read-")]
    assert len(read_keys) == result.report["input"]["partitions"] > 1
    assert len(set(read_keys)) == len(read_keys)
