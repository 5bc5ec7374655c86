"""Compressed CSV inputs are decompressed once, in bounded blocks, into the run's spool
folder and read from there like plain CSV: memory stays bounded whatever a file expands
to, a file expanding past `max_decompressed_size` fails cleanly, and the results are the
bytes of the plain file's run."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
import zstandard

from conftest import PUBLISHED_FILES, engine_command, published_bytes, run_cli, run_engine

LINE = b"2024-01-01,P1,10.00,C1\n"
HEADER = b"date,product_id,amount,customer_id\n"


def _expanding_zstd(path, expanded_bytes: int):
    """A small zstd file that decompresses to about `expanded_bytes` of valid CSV."""
    chunk = LINE * (1 << 15)
    with open(path, "wb") as handle, zstandard.ZstdCompressor(level=10).stream_writer(handle) as writer:
        writer.write(HEADER)
        for _ in range(expanded_bytes // len(chunk)):
            writer.write(chunk)
    return path


def _peak_rss_mib(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run the engine as the only child of a small Python process; that process reports its
    children's peak resident memory (the kernel's own figure)."""
    probe = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")
    done = subprocess.run([sys.executable, "-c", probe, *engine_command(*args)], capture_output=True, text=True,
                          timeout=600)
    return done, int(done.stdout.strip().splitlines()[-1]) / 1024


@pytest.mark.slow
def test_a_tiny_file_expanding_to_384_mib_runs_in_less_memory_than_its_text(tmp_path):
    expanded = 384 * 2**20
    source = _expanding_zstd(tmp_path / "sales.csv.zst", expanded)
    assert source.stat().st_size < 2**20
    done, peak = _peak_rss_mib("run", str(source), "--output", str(tmp_path / "out"), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "out" / "data_quality_metrics.json").read_text())["raw_record_count"]
    assert rows == expanded // len(LINE) // (1 << 15) * (1 << 15)
    # Holding the text whole (the old reader) needs more than the text itself.
    assert peak < expanded / 2**20, f"peak {peak:.0f} MiB"
    assert not list((tmp_path / "out").glob(".spool-*"))


def test_a_file_expanding_past_the_limit_fails_cleanly_and_keeps_the_outputs(tmp_path):
    source = _expanding_zstd(tmp_path / "sales.csv.zst", 8 * 2**20)
    plain = tmp_path / "small.csv"
    plain.write_bytes(HEADER + LINE * 10)
    out = tmp_path / "out"
    assert run_cli("run", str(plain), "--output", str(out)).returncode == 0
    before = published_bytes(out)
    done = run_cli("run", str(source), "--output", str(out), env={"ENGINE__MAX_DECOMPRESSED_SIZE": "2MiB"})
    assert done.returncode == 3, done.stderr
    assert f"error: {source}: expands to more than 2.0 MiB when decompressed" in done.stderr
    assert "Traceback" not in done.stderr
    assert published_bytes(out) == before
    assert not list(out.glob(".spool-*"))


@pytest.mark.parametrize("suffix, compress", [(".csv.gz", gzip.compress), (".csv.zst", zstandard.compress)])
def test_compressed_files_give_the_plain_files_bytes_in_small_partitions(tmp_path, suffix, compress):
    text = HEADER + b"".join(
        f"2024-0{i % 3 + 1}-{i % 28 + 1:02d},P{i % 11},{i % 900 + 1}.{i % 100:02d},C{i % 50}\n".encode()
        for i in range(4000))
    plain = tmp_path / "plain.csv"
    plain.write_bytes(text)
    packed = tmp_path / f"packed{suffix}"
    packed.write_bytes(compress(text))
    run_engine(plain, tmp_path / "plain", mode="pandas")
    expected = published_bytes(tmp_path / "plain")
    for mode in ("pandas", "dask"):
        result = run_engine(packed, tmp_path / mode, mode=mode, partition_size="16KiB")
        assert result.report["input"]["partitions"] > 4
        assert result.report["input"]["files"] == [{"path": str(packed), "bytes": packed.stat().st_size}]
        assert {name: (tmp_path / mode / name).read_bytes() for name in PUBLISHED_FILES} == expected


def test_a_malformed_line_deep_in_a_compressed_file_is_named_by_its_line(tmp_path):
    lines = [HEADER] + [LINE] * 5000 + [b"2024-01-02,P2,1.00,C2,extra\n"] + [LINE] * 10
    packed = tmp_path / "sales.csv.gz"
    packed.write_bytes(gzip.compress(b"".join(lines)))
    done = run_cli("run", str(packed), "--output", str(tmp_path / "out"), "--mode", "dask",
                   "--partition-size", "8KiB")
    assert done.returncode == 3
    assert f"{packed}: line 5002: expected 4 fields, found 5" in done.stderr
