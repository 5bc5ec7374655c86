"""Pseudonymised customer ids: keyed, deterministic, private keys only, no collisions."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from conftest import run_cli, write_csv
from engine.errors import ConfigurationError
from engine.rules.pseudonyms import KEY_ENV, KEY_FILE_ENV, load_key, pseudonym, pseudonymize

KEY = b"0123456789abcdef-test-key"


def test_pseudonyms_are_keyed_deterministic_and_keep_missing_cells():
    ids = pa.array(["C1", "C2", "C1", None, "", "  ", "C2"])
    first = pseudonymize(ids, KEY).to_pylist()
    assert first == pseudonymize(ids, KEY).to_pylist()
    assert first[0] == first[2] != first[1] == first[6]
    assert first[3:6] == [None, None, None]
    assert len(first[0]) == 32 and int(first[0], 16) >= 0
    assert pseudonym(b"another key of 16+ bytes", "C1") != first[0]
    assert first[0] != hashlib.sha256(b"C1").hexdigest()[:32]
    for key in (KEY, b"k" * 100):  # a key longer than SHA-256's block is hashed first (RFC 2104)
        expected = hmac.new(key, "C1 ö".encode(), hashlib.sha256).hexdigest()[:32]
        assert pseudonymize(pa.array(["C1 ö"]), key).to_pylist() == [expected] == [pseudonym(key, "C1 ö")]


@pytest.mark.slow
def test_no_collision_among_10_million_ids_where_the_unkeyed_8_hex_scheme_collides():
    ids = [f"C{i:010d}" for i in range(10_000_000)]
    assert len({pseudonym(KEY, i) for i in ids}) == len(ids)
    sample = ids[:500_000]
    unkeyed = {hashlib.sha256(i.encode()).hexdigest()[:8] for i in sample}
    collisions = len(sample) - len(unkeyed)
    # about n^2 / 2^33 = 29 expected for 500,000 ids
    assert 5 <= collisions <= 80, collisions


def test_key_sources_and_refusals(tmp_path):
    with pytest.raises(ConfigurationError, match="no pseudonymisation key"):
        load_key({})
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        load_key({KEY_ENV: "short"})
    assert load_key({KEY_ENV: KEY.decode()}) == KEY
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    key_file.chmod(0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        load_key({KEY_FILE_ENV: str(key_file)})
    key_file.chmod(0o600)
    assert load_key({KEY_FILE_ENV: str(key_file)}) == KEY


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_anonymize_command(tmp_path, suffix):
    source = write_csv(tmp_path / "in.csv", [("2024-01-01", "P1", "1.00", "C1"), ("2024-01-02", "P2", "2.00", ""),
                                             ("2024-01-03", "P3", "3.00", "C1")])
    target = tmp_path / "out" / f"anon{suffix}"
    done = run_cli("anonymize", str(source), str(target), env={KEY_ENV: KEY.decode()})
    assert done.returncode == 0, done.stderr
    table = pq.read_table(target) if suffix == ".parquet" else pacsv.read_csv(
        target, convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in ("date", "customer_id")}))
    customers = table["customer_id"].to_pylist()
    assert customers[0] == customers[2] == pseudonym(KEY, "C1") and customers[1] in (None, "")
    assert table["date"].to_pylist() == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_anonymize_without_a_key_refuses_and_writes_nothing(tmp_path):
    source = write_csv(tmp_path / "in.csv", [("2024-01-01", "P1", "1.00", "C1")])
    env = {name: "" for name in (KEY_ENV, KEY_FILE_ENV)}
    done = run_cli("anonymize", str(source), str(tmp_path / "anon.csv"), env=env)
    assert done.returncode == 2
    assert "no pseudonymisation key" in done.stderr
    assert not (tmp_path / "anon.csv").exists()
