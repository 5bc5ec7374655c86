"""OpenLineage for every run: valid events (official JSON Schemas), named datasets,
statistics from the single pass, column lineage, a real HTTP backend on 127.0.0.1 that
is dead or failing, replay exactly once, and `engine lineage show`."""

from __future__ import annotations

import json
import time

import pytest

from conftest import run_cli, run_engine, write_csv
from engine.lineage.columns import published_schema
from engine.lineage.delivery import PENDING_NAME, RECORD_NAME
from engine.lineage.naming import datasource_uri
from lineage_backend import LineageBackend, dead_url
from openlineage_schemas import validate_event
from test_modes import TRICKY_ROWS

pytestmark = pytest.mark.usefixtures("isolated_openlineage_config")
PUBLISHED = 10  # 3 tables x (csv, parquet) + 3 JSON documents + the quarantine


def _record(output):
    path = output / "lineage" / RECORD_NAME
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pending(output):
    path = output / "lineage" / PENDING_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def tricky(tmp_path):
    return write_csv(tmp_path / "in" / "sales.csv", TRICKY_ROWS)


@pytest.mark.parametrize("mode, settings", [("pandas", {}), ("dask", {"partition_size": "300B"}),
                                            ("distributed", {"partition_size": "300B", "cluster.workers": 2})])
def test_every_mode_records_valid_start_and_complete(spec, tricky, tmp_path, mode, settings):
    result = run_engine(tricky, tmp_path / "out", mode=mode, **settings)
    events = _record(tmp_path / "out")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in events} == {result.run_id}
    for event in events:
        validate_event(event)
    complete = events[-1]
    assert complete["job"]["facets"]["jobType"]["processingType"] == "BATCH"
    assert "def raw_sales_data" in complete["job"]["facets"]["sourceCode"]["sourceCode"]
    engine = complete["run"]["facets"]["processing_engine"]
    assert engine["name"] == ("pandas" if mode == "pandas" else "dask")
    assert complete["run"]["facets"]["salesEngine"]["mode"] == mode


def test_input_dataset_facets_come_from_the_single_pass(spec, tricky, tmp_path):
    result = run_engine(tricky, tmp_path / "out")
    (dataset,) = _record(tmp_path / "out")[-1]["inputs"]
    assert (dataset["namespace"], dataset["name"]) == ("file", str(tricky.resolve()))
    assert dataset["facets"]["storage"] == {**dataset["facets"]["storage"], "storageLayer": "file", "fileFormat": "csv"}
    assert dataset["facets"]["dataSource"] == {**dataset["facets"]["dataSource"], "name": "file",
                                               "uri": datasource_uri("file")}
    assert [f["name"] for f in dataset["facets"]["schema"]["fields"]] == ["date", "product_id", "amount", "customer_id"]
    metrics = dataset["inputFacets"]["dataQualityMetrics"]
    quality = result.results["data_quality_metrics"]
    assert metrics["rowCount"] == quality["raw_record_count"] == len(TRICKY_ROWS)
    assert metrics["bytes"] == tricky.stat().st_size and metrics["fileCount"] == 1
    for column, count in quality["null_count_by_column"].items():
        assert metrics["columnMetrics"][column]["nullCount"] == count
    assert (metrics["columnMetrics"]["amount"]["min"], metrics["columnMetrics"]["amount"]["max"]) == (-2.5, 999999999999.99)
    assert (metrics["columnMetrics"]["date"]["min"], metrics["columnMetrics"]["date"]["max"]) == (20201228, 20240304)
    assert dataset["inputFacets"]["inputStatistics"] == {**dataset["inputFacets"]["inputStatistics"],
                                                         "rowCount": len(TRICKY_ROWS), "size": tricky.stat().st_size}


def test_each_file_of_a_glob_is_its_own_input(spec, tmp_path):
    for index in range(3):
        write_csv(tmp_path / "in" / f"part-{index}.csv", TRICKY_ROWS[index::3])
    run_engine(str(tmp_path / "in" / "part-*.csv"), tmp_path / "out", mode="dask", partition_size="200B")
    inputs = _record(tmp_path / "out")[-1]["inputs"]
    assert [d["name"] for d in inputs] == [str(tmp_path / "in" / f"part-{i}.csv") for i in range(3)]
    assert [d["inputFacets"]["dataQualityMetrics"]["rowCount"] for d in inputs] == [
        len(TRICKY_ROWS[i::3]) for i in range(3)]


def test_outputs_carry_statistics_lifecycle_and_column_lineage(spec, tricky, tmp_path):
    run_engine(tricky, tmp_path / "out")
    run_engine(tricky, tmp_path / "out")
    first, second = (_record(tmp_path / "out")[i]["outputs"] for i in (1, 3))
    assert len(first) == PUBLISHED
    assert {d["facets"]["lifecycleStateChange"]["lifecycleStateChange"] for d in first} == {"CREATE"}
    assert {d["facets"]["lifecycleStateChange"]["lifecycleStateChange"] for d in second} == {"OVERWRITE"}
    input_name = str(tricky.resolve())
    for dataset in first:
        file = tmp_path / "out" / dataset["name"].rsplit("/", 1)[-1]
        output = file.name.split(".")[0]
        assert (dataset["namespace"], dataset["name"]) == ("file", str(file))
        assert dataset["outputFacets"]["outputStatistics"]["size"] == file.stat().st_size
        columns = [name for name, _ in published_schema(output)]
        assert [f["name"] for f in dataset["facets"]["schema"]["fields"]] == columns
        lineage = dataset["facets"]["columnLineage"]
        assert sorted(lineage["fields"]) == sorted(columns)
        for column, sources in lineage["fields"].items():
            assert all(f["name"] == input_name for f in sources["inputFields"])
            # only the quarantine's position columns come from no input column
            assert bool(sources["inputFields"]) != (output == "rejected_rows" and column in ("file", "line"))
    daily = next(d for d in first if d["name"].endswith("daily_sales_summary.csv"))
    daily_rows = len((tmp_path / "out" / "daily_sales_summary.csv").read_text().splitlines()) - 1
    assert daily["outputFacets"]["outputStatistics"]["rowCount"] == daily_rows == 11
    subtypes = {t["subtype"] for f in daily["facets"]["columnLineage"]["dataset"] for t in f["transformations"]}
    assert subtypes == {"FILTER", "GROUP_BY", "SORT"}


def test_a_failed_run_records_fail_with_the_error(spec, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,product_id\n2024-01-01,P1\n")
    done = run_cli("run", str(bad), "--output", str(tmp_path / "out"))
    assert done.returncode == 3
    events = _record(tmp_path / "out")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    for event in events:
        validate_event(event)
    error = events[-1]["run"]["facets"]["errorMessage"]
    assert "missing required columns: amount" in error["message"]
    assert error["programmingLanguage"] == "python"


def test_parent_run_from_the_orchestrator(spec, tricky, tmp_path, monkeypatch):
    parent = {"OPENLINEAGE_PARENT_RUN_ID": "0190a9c8-5a36-7c2a-9b5e-0d5c1b2e7f01",
              "OPENLINEAGE_PARENT_JOB_NAMESPACE": "airflow", "OPENLINEAGE_PARENT_JOB_NAME": "nightly.sales"}
    for name, value in parent.items():
        monkeypatch.setenv(name, value)
    run_engine(tricky, tmp_path / "out")
    for event in _record(tmp_path / "out"):
        validate_event(event)
        facet = event["run"]["facets"]["parent"]
        assert (facet["run"]["runId"], facet["job"]["name"]) == (parent["OPENLINEAGE_PARENT_RUN_ID"], "nightly.sales")


def test_http_backend_receives_valid_events(spec, tricky, tmp_path, monkeypatch):
    with LineageBackend() as backend:
        monkeypatch.setenv("OPENLINEAGE_URL", backend.url)
        result = run_engine(tricky, tmp_path / "out", mode="dask", partition_size="400B")
        received = backend.wait_for(2, timeout=10)
    assert [e["eventType"] for e in received] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in received} == {result.run_id}
    assert backend.validation_errors == []
    assert _pending(tmp_path / "out") == []
    assert len(_record(tmp_path / "out")) == 2  # the local record is kept too


def test_dead_backend_never_fails_the_run_and_replay_delivers_once(spec, tricky, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", dead_url())
    started = time.monotonic()
    result = run_engine(tricky, tmp_path / "out", **{"lineage.timeout": 2})
    assert time.monotonic() - started < 2 + 10  # one deadline, then straight to the outbox
    kept = _pending(tmp_path / "out")
    assert [e["eventType"] for e in kept] == ["START", "COMPLETE"]
    assert (tmp_path / "out" / "daily_sales_summary.csv").exists()

    with LineageBackend() as backend:
        done = run_cli("lineage", "replay", "--output", str(tmp_path / "out"), env={"OPENLINEAGE_URL": backend.url})
        assert done.returncode == 0, done.stderr
        assert "delivered 2 lineage event(s); 0 still pending" in done.stdout
        again = run_cli("lineage", "replay", "--output", str(tmp_path / "out"), env={"OPENLINEAGE_URL": backend.url})
        assert "delivered 0 lineage event(s)" in again.stdout
        assert [e["run"]["runId"] for e in backend.events] == [result.run_id] * 2
        assert backend.validation_errors == []
    assert _pending(tmp_path / "out") == []


def test_backend_answering_500_then_recovering(spec, tricky, tmp_path, monkeypatch):
    with LineageBackend(failing=True) as backend:
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", backend.url)
        run_engine(tricky, tmp_path / "out", **{"lineage.timeout": 3})
        assert backend.events == [] and backend.requests >= 1
        assert len(_pending(tmp_path / "out")) == 2
        down = run_cli("lineage", "replay", "--output", str(tmp_path / "out"),
                       env={"OPENLINEAGE__TRANSPORT__TYPE": "http", "OPENLINEAGE__TRANSPORT__URL": backend.url,
                            "ENGINE__LINEAGE__TIMEOUT": "1"})
        assert down.returncode == 7 and len(_pending(tmp_path / "out")) == 2
        backend.failing = False
        up = run_cli("lineage", "replay", "--output", str(tmp_path / "out"),
                     env={"OPENLINEAGE__TRANSPORT__TYPE": "http", "OPENLINEAGE__TRANSPORT__URL": backend.url})
        assert up.returncode == 0, up.stderr
        # Delivery is at least once: on a loaded machine the client's HTTP transport may
        # retry a request whose answer was slow, and the backend then sees that event twice
        # (OpenLineage consumers are idempotent by run, type and time; docs/design.md).
        delivered = list(dict.fromkeys((e["run"]["runId"], e["eventType"], e["eventTime"]) for e in backend.events))
        assert [kind for _, kind, _ in delivered] == ["START", "COMPLETE"]
        assert backend.validation_errors == []


def test_slow_backend_costs_at_most_one_deadline(tricky, tmp_path, monkeypatch):
    with LineageBackend(delay=30) as backend:
        monkeypatch.setenv("OPENLINEAGE_URL", backend.url)
        started = time.monotonic()
        run_engine(tricky, tmp_path / "out", **{"lineage.timeout": 1})
        assert time.monotonic() - started < 1 + 8
    assert len(_pending(tmp_path / "out")) == 2


def test_lineage_show_prints_inputs_job_outputs_and_column_sources(tricky, tmp_path):
    run_engine(tricky, tmp_path / "out")
    done = run_cli("lineage", "show", "--output", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"file:{tricky.resolve()}  ({len(TRICKY_ROWS)} rows)" in text
    assert "→ sales-engine/sales_analytics →" in text
    assert f"file:{tmp_path / 'out' / 'weekly_aggregation.parquet'}" in text
    assert "    total_amount_ma7 ← amount [AGGREGATION], date [WINDOW]" in text


def test_lineage_can_be_switched_off(tricky, tmp_path):
    run_engine(tricky, tmp_path / "out", **{"lineage.enabled": False})
    assert not (tmp_path / "out" / "lineage").exists()


def test_node_events_are_valid_running_events(spec, tricky, tmp_path):
    run_engine(tricky, tmp_path / "out", **{"lineage.node_events": True})
    events = _record(tmp_path / "out")
    kinds = [e["eventType"] for e in events]
    assert kinds[0] == "START" and kinds[-1] == "COMPLETE" and kinds.count("RUNNING") >= 10
    finished = {e["run"]["facets"]["salesEngine"]["metrics"]["finished_node"] for e in events[1:-1]}
    assert {"raw_sales_data", "sales_reductions", "trend_analysis"} <= finished
    for event in events:
        validate_event(event)


def test_the_record_holds_what_the_openlineage_serde_writes(tmp_path, monkeypatch):
    """The record's fast serialisation gives Serde.to_json's text for every event kind:
    START, RUNNING, COMPLETE (a folder of more files than get column lineage each, then an
    incremental run with reused files) and FAIL, with a parent run facet."""
    from openlineage.client.serde import Serde

    from engine.lineage import delivery

    pairs = []

    def both(event):
        pairs.append((event.eventType.value, delivery_json(event), Serde.to_json(event)))
        return pairs[-1][1]

    delivery_json = delivery.event_json
    monkeypatch.setattr(delivery, "event_json", both)
    monkeypatch.setenv("OPENLINEAGE_PARENT_RUN_ID", "0190a9c8-5a36-7c2a-9b5e-0d5c1b2e7f01")
    monkeypatch.setenv("OPENLINEAGE_PARENT_JOB_NAME", "nightly.sales")
    for index in range(17):
        write_csv(tmp_path / "in" / f"day-{index:02d}.csv", TRICKY_ROWS[index % 3::3])
    run_engine(tmp_path / "in", tmp_path / "out", **{"lineage.node_events": True})
    write_csv(tmp_path / "in" / "day-17.csv", TRICKY_ROWS[:5])
    run_engine(tmp_path / "in", tmp_path / "out")
    (tmp_path / "in" / "day-18.csv").write_text("date,product_id\n2024-01-01,P1\n")
    with pytest.raises(Exception, match="missing required columns"):
        run_engine(tmp_path / "in", tmp_path / "out")
    assert {kind for kind, _, _ in pairs} == {"START", "RUNNING", "COMPLETE", "FAIL"}
    for kind, fast, serde in pairs:
        assert fast == serde, kind
    reused = [d["inputFacets"]["salesEngineInput"]["reusedPartial"] for d in json.loads(pairs[-3][1])["inputs"]]
    assert reused == [True] * 17 + [False]


@pytest.mark.parametrize(
    "location, identity",
    [
        ("/data/sales.csv", ("file", "/data/sales.csv")),
        ("file:///data/sales.csv", ("file", "/data/sales.csv")),
        ("s3://bucket/raw/sales.csv", ("s3://bucket", "raw/sales.csv")),
        ("gs://bucket/sales.parquet", ("gs://bucket", "sales.parquet")),
        ("hdfs://namenode:8020/warehouse/sales", ("hdfs://namenode:8020", "warehouse/sales")),
    ],
)
def test_dataset_naming_follows_the_openlineage_conventions(location, identity):
    from engine.lineage.naming import dataset_identity

    assert dataset_identity(location) == identity
