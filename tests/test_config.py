"""Configuration: YAML files, ENGINE__* variables and flags, validated up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli, write_csv
from engine.config import EngineConfig, load_config, parse_size
from engine.errors import ConfigurationError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    assert isinstance(load_config(str(path), environ={}), EngineConfig)


def test_shipped_configs_cover_every_mode_and_an_external_cluster():
    configs = [load_config(str(p), environ={}) for p in CONFIGS.glob("*.yaml")]
    assert {c.mode for c in configs} >= {"auto", "pandas", "dask", "distributed"}
    assert any(c.cluster.scheduler for c in configs)


def test_precedence_is_file_then_environment_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("mode: dask\ntop_days: 3\ncluster:\n  workers: 2\n  scheduler: tcp://a:1\n")
    config = load_config(str(path), overrides={"top_days": 9, "cluster.workers": None},
                         environ={"ENGINE__CLUSTER__WORKERS": "4", "ENGINE__MODE": "distributed"})
    assert (config.mode, config.top_days, config.cluster.workers, config.cluster.scheduler) == (
        "distributed", 9, 4, "tcp://a:1")


@pytest.mark.parametrize(
    "text, message",
    [
        ("mode: turbo\n", "mode: 'turbo' is not one of auto, pandas, dask, distributed"),
        ("modes: dask\n", "unknown key 'modes' (did you mean 'mode'?)"),
        ("cluster:\n  worker: 2\n", "unknown key 'cluster.worker' (did you mean 'cluster.workers'?)"),
        ("alerts:\n  max_null_count: lots\n", "'alerts.max_null_count' must be an integer, got 'lots'"),
        ("alerts:\n  fail_on_alert: 1\n", "'alerts.fail_on_alert' must be true or false"),
        ("partition_size: huge\n", "partition_size: 'huge' is not a size"),
        ("cluster: 3\n", "'cluster' must be a mapping"),
        ("- a\n- b\n", "must be a mapping of keys to values"),
        ("mode: [\n", "not valid YAML"),
    ],
)
def test_bad_configuration_names_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_config(str(path), environ={})
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_sizes():
    assert parse_size("64MiB") == 64 * 2**20
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size(4096) == 4096
    with pytest.raises(ConfigurationError):
        parse_size("-1MiB")


def test_cli_reports_a_bad_config_in_one_line_with_exit_code_2(tmp_path):
    source = write_csv(tmp_path / "s.csv", [("2024-01-01", "P1", "1", "C1")])
    config = tmp_path / "bad.yaml"
    config.write_text("alerts:\n  max_data_loss: 5\n")
    done = run_cli("run", str(source), "--config", str(config), "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {config}: unknown key 'alerts.max_data_loss' (did you mean 'alerts.max_data_loss_rate'?)"]
    assert not (tmp_path / "out").exists()


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read configuration"):
        load_config(str(tmp_path / "absent.yaml"), environ={})


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"ENGINE__TOP_DAYS": "many"},
         "environment variable ENGINE__TOP_DAYS: 'top_days' must be an integer, got 'many'"),
        ({"ENGINE__TOP_DAYS": "0"}, "environment variable ENGINE__TOP_DAYS: top_days: must be at least 1, got 0"),
        ({"ENGINE__MODE": "turbo"},
         "environment variable ENGINE__MODE: mode: 'turbo' is not one of auto, pandas, dask, distributed"),
        ({"ENGINE__CLUSTER__WORKR": "2"},
         "environment variable ENGINE__CLUSTER__WORKR: unknown key 'cluster.workr' (did you mean 'cluster.workers'?)"),
        ({"ENGINE__CLUSTER": "3"}, "environment variable ENGINE__CLUSTER: 'cluster' must be a mapping"),
        ({"ENGINE__CLUSTER__TLS": "files"},
         "environment variable ENGINE__CLUSTER__TLS: cluster.tls: files needs tls_ca_file, tls_cert and tls_key"),
        ({"ENGINE__MODE": "[dask"}, "environment variable ENGINE__MODE: not a valid value"),
    ],
)
def test_a_bad_environment_variable_is_named(tmp_path, variables, message):
    path = tmp_path / "c.yaml"
    path.write_text("top_days: 3\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(str(path), environ=variables)
    assert str(caught.value).startswith(message)


def test_a_flag_over_a_bad_environment_variable_wins_and_a_file_error_names_the_file(tmp_path):
    assert load_config(overrides={"mode": "pandas"}, environ={"ENGINE__MODE": "turbo"}).mode == "pandas"
    path = tmp_path / "c.yaml"
    path.write_text("top_days: 0\n")
    with pytest.raises(ConfigurationError, match=f"^{path}: top_days: must be at least 1"):
        load_config(str(path), environ={"ENGINE__MODE": "dask"})


def test_cli_names_the_environment_variable_in_one_line_with_exit_code_2(tmp_path):
    source = write_csv(tmp_path / "s.csv", [("2024-01-01", "P1", "1", "C1")])
    done = run_cli("run", str(source), "--output", str(tmp_path / "out"), env={"ENGINE__PARTITION_SIZE": "huge"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: environment variable ENGINE__PARTITION_SIZE: partition_size: 'huge' is not a size "
        "(e.g. 64MiB, 1GB, 1048576)"]
    assert not (tmp_path / "out").exists()
