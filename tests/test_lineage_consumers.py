"""Lineage that real OpenLineage consumers (Marquez, Data.Rentgen) understand: planned
outputs in START and FAIL, the per-field transformation summary Marquez reads, a nominal
time only when scheduled, a bad parent run id warned about, permanent refusals recorded
once and never retried, one data source per store, quality assertions, one type
vocabulary and custom facets whose schemas ship with the engine. Real runs, the real
client and its HTTP transport against the test backend; every event validates."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing.jsonschema import DRAFT202012

import openlineage_schemas
from conftest import run_cli, run_engine, write_csv
from engine.config import load_config
from engine.errors import ConfigurationError
from engine.lineage import events as lineage_events
from engine.lineage.columns import column_type
from engine.lineage.delivery import PENDING_NAME, RECORD_NAME, REJECTED_NAME, Failure
from engine.lineage.naming import datasource_uri
from lineage_backend import LineageBackend, dead_url
from openlineage_schemas import validate_event
from test_modes import TRICKY_ROWS

pytestmark = pytest.mark.usefixtures("isolated_openlineage_config")
ROOT = Path(__file__).resolve().parents[1]
PARENT = {"OPENLINEAGE_PARENT_JOB_NAMESPACE": "airflow", "OPENLINEAGE_PARENT_JOB_NAME": "nightly.sales"}
VOCABULARY = {"bigint", "integer", "smallint", "tinyint", "double", "float", "boolean", "string", "date",
              "timestamp", "binary", "struct", "array", "map"}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _record(output: Path) -> list[dict]:
    return _lines(output / "lineage" / RECORD_NAME)


def _valid(events: list[dict]) -> list[dict]:
    for event in events:
        validate_event(event)
    return events


@pytest.fixture
def tricky(tmp_path):
    return write_csv(tmp_path / "in" / "sales.csv", TRICKY_ROWS)


# -- 1. planned outputs in START and FAIL --------------------------------------


def test_start_lists_the_planned_outputs_with_schemas_and_no_statistics(spec, tricky, tmp_path):
    run_engine(tricky, tmp_path / "out")
    start, complete = _valid(_record(tmp_path / "out"))
    planned = {d["name"]: d for d in start["outputs"]}
    published = {d["name"]: d for d in complete["outputs"]}
    assert set(planned) == set(published) and len(planned) == 10
    for name, dataset in planned.items():
        assert dataset["facets"]["schema"] == published[name]["facets"]["schema"]
        assert "outputFacets" not in dataset or not dataset["outputFacets"]
        assert "lifecycleStateChange" not in dataset["facets"]


def test_a_failed_run_lists_the_planned_outputs(spec, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,product_id\n2024-01-01,P1\n")
    assert run_cli("run", str(bad), "--output", str(tmp_path / "out")).returncode == 3
    start, fail = _valid(_record(tmp_path / "out"))
    assert fail["eventType"] == "FAIL"
    names = [d["name"] for d in fail["outputs"]]
    assert names == [d["name"] for d in start["outputs"]]
    assert str(tmp_path / "out" / "daily_sales_summary.parquet") in names


# -- 2. the per-field transformation summary ---------------------------------


def test_every_derived_column_says_its_transformation_type_and_description(spec, tricky, tmp_path):
    run_engine(tricky, tmp_path / "out")
    complete = _valid(_record(tmp_path / "out"))[-1]
    daily = next(d for d in complete["outputs"] if d["name"].endswith("daily_sales_summary.csv"))
    fields = daily["facets"]["columnLineage"]["fields"]
    assert fields["total_amount"]["transformationType"] == "AGGREGATION"
    assert "amount: DIRECT AGGREGATION" in fields["total_amount"]["transformationDescription"]
    assert fields["total_amount"]["inputFields"][0]["transformations"]  # the current form is kept
    for dataset in complete["outputs"]:
        for column, field in dataset["facets"]["columnLineage"]["fields"].items():
            if field["inputFields"]:
                assert field["transformationType"] in {"IDENTITY", "TRANSFORMATION", "AGGREGATION", "MASKED",
                                                       "INDIRECT"}, column
                assert field["transformationDescription"], column


# -- 3. nominal time only when an orchestrator gives one ----------------------


def test_no_nominal_time_unless_scheduled(spec, tricky, tmp_path):
    run_engine(tricky, tmp_path / "out")
    assert all("nominalTime" not in e["run"]["facets"] for e in _valid(_record(tmp_path / "out")))


def test_a_scheduled_time_is_the_nominal_time(spec, tricky, tmp_path):
    run_cli("run", str(tricky), "--output", str(tmp_path / "out"),
            "--nominal-time", "2024-05-01T02:00:00Z/2024-05-02T02:00:00+00:00")
    events = _valid(_record(tmp_path / "out"))
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        assert event["run"]["facets"]["nominalTime"] == {
            **event["run"]["facets"]["nominalTime"],
            "nominalStartTime": "2024-05-01T02:00:00+00:00", "nominalEndTime": "2024-05-02T02:00:00+00:00"}


@pytest.mark.parametrize("value, message", [("yesterday", "is not a time"), ("2024-05-01T02:00:00", "no UTC offset"),
                                            ("2024-05-02T00:00Z/2024-05-01T00:00Z", "ends before it starts")])
def test_a_bad_nominal_time_is_a_usage_error(tmp_path, value, message):
    with pytest.raises(ConfigurationError, match=f"lineage.nominal_time: .*{message}"):
        load_config(overrides={"lineage.nominal_time": value}, environ={})
    done = run_cli("run", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "out"), "--nominal-time", value)
    assert done.returncode == 2
    assert "lineage.nominal_time" in done.stderr and "--nominal-time" in done.stderr


# -- 4. parent run ids ---------------------------------------------------------


def test_a_parent_run_id_that_is_not_a_uuid_is_warned_about_and_left_out(spec, tricky, tmp_path, monkeypatch,
                                                                         caplog):
    for name, value in {**PARENT, "OPENLINEAGE_PARENT_RUN_ID": "manual__2024-05-01"}.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="engine.lineage.events"):
        result = run_engine(tricky, tmp_path / "out")
    assert (tmp_path / "out" / "daily_sales_summary.csv").exists() and result.run_id
    events = _valid(_record(tmp_path / "out"))
    assert all("parent" not in e["run"]["facets"] for e in events)
    warnings = [r.getMessage() for r in caplog.records if "OPENLINEAGE_PARENT_RUN_ID" in r.getMessage()]
    assert len(warnings) == 1 and "is not a UUID" in warnings[0]


def test_a_bad_root_run_id_leaves_the_parent_without_root(caplog):
    environ = {**PARENT, "OPENLINEAGE_PARENT_RUN_ID": "0190a9c8-5a36-7c2a-9b5e-0d5c1b2e7f01",
               "OPENLINEAGE_ROOT_PARENT_RUN_ID": "42", "OPENLINEAGE_ROOT_PARENT_JOB_NAMESPACE": "airflow",
               "OPENLINEAGE_ROOT_PARENT_JOB_NAME": "nightly"}
    facet = lineage_events.parent_from_environment(environ)
    assert facet.run.runId == environ["OPENLINEAGE_PARENT_RUN_ID"] and facet.root is None
    assert "OPENLINEAGE_ROOT_PARENT_RUN_ID='42' is not a UUID" in caplog.text


def test_the_run_succeeds_from_the_cli_with_a_bad_parent(tricky, tmp_path):
    env = {**PARENT, "OPENLINEAGE_PARENT_RUN_ID": "not-a-uuid"}
    done = run_cli("run", str(tricky), "--output", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr
    assert "is not a UUID" in done.stderr


# -- 5. permanent refusals: recorded once, never retried -----------------------


@pytest.mark.parametrize("status, permanent", [(400, True), (404, True), (422, True), (408, False), (429, False),
                                               (500, False), (503, False), (None, False)])
def test_only_4xx_other_than_408_and_429_are_permanent(status, permanent):
    assert Failure("x", status).permanent is permanent


def test_events_refused_during_a_run_are_recorded_once_and_not_kept(spec, tricky, tmp_path, monkeypatch):
    body = '{"detail": [{"msg": "parent run id must be a UUIDv7"}]}'
    with LineageBackend(refuse=422, refusal_body=body) as backend:
        monkeypatch.setenv("OPENLINEAGE_URL", backend.url)
        run_engine(tricky, tmp_path / "out")
        assert backend.requests == 2  # a refusal does not stop the run's other events
    rejected = _lines(tmp_path / "out" / "lineage" / REJECTED_NAME)
    assert [(r["event"]["eventType"], r["status"], r["body"]) for r in rejected] == [
        ("START", 422, body), ("COMPLETE", 422, body)]
    _valid([r["event"] for r in rejected])
    assert all(dt.datetime.fromisoformat(r["time"]).tzinfo for r in rejected)
    assert not (tmp_path / "out" / "lineage" / PENDING_NAME).exists()


def test_replay_records_refused_events_and_exits_0(spec, tricky, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", dead_url())
    run_engine(tricky, tmp_path / "out", **{"lineage.timeout": 2})
    assert len(_lines(tmp_path / "out" / "lineage" / PENDING_NAME)) == 2
    with LineageBackend(refuse=422, refuse_when=lambda event: event["eventType"] == "START") as backend:
        env = {"OPENLINEAGE_URL": backend.url}
        done = run_cli("lineage", "replay", "--output", str(tmp_path / "out"), env=env)
        assert done.returncode == 0, done.stderr
        assert "delivered 1 lineage event(s); 0 still pending; 1 refused for good by the backend" in done.stdout
        again = run_cli("lineage", "replay", "--output", str(tmp_path / "out"), env=env)
        assert again.returncode == 0 and "delivered 0 lineage event(s); 0 still pending" in again.stdout
        assert backend.requests == 2
        assert [e["eventType"] for e in _valid(backend.events)] == ["COMPLETE"]
    rejected = _lines(tmp_path / "out" / "lineage" / REJECTED_NAME)
    assert [(r["event"]["eventType"], r["status"]) for r in rejected] == [("START", 422)]


def test_too_many_requests_stays_pending(tricky, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", dead_url())
    run_engine(tricky, tmp_path / "out", **{"lineage.timeout": 2})
    with LineageBackend(refuse=429) as backend:
        done = run_cli("lineage", "replay", "--output", str(tmp_path / "out"), env={"OPENLINEAGE_URL": backend.url})
    assert done.returncode == 7
    assert len(_lines(tmp_path / "out" / "lineage" / PENDING_NAME)) == 2
    assert not (tmp_path / "out" / "lineage" / REJECTED_NAME).exists()


# -- 6. one data source per store ---------------------------------------------


def test_every_local_file_has_the_filesystem_as_its_data_source(spec, tmp_path):
    for index in range(2):
        write_csv(tmp_path / "in" / f"part-{index}.csv", TRICKY_ROWS[index::2])
    run_engine(str(tmp_path / "in" / "part-*.csv"), tmp_path / "out")
    sources = [d["facets"]["dataSource"] for d in _valid(_record(tmp_path / "out"))[-1]["inputs"]]
    assert len(sources) == 2 and all(s == sources[0] for s in sources)
    assert (sources[0]["name"], sources[0]["uri"]) == ("file", datasource_uri("file"))
    assert re.fullmatch(r"file://[A-Za-z0-9.-]+", sources[0]["uri"])
    assert datasource_uri("s3://bucket") == "s3://bucket"


# -- 7. quality results as assertions -------------------------------------------


def test_rules_and_alerts_are_assertions_on_the_input(spec, tricky, tmp_path):
    result = run_engine(tricky, tmp_path / "out")
    (dataset,) = _valid(_record(tmp_path / "out"))[-1]["inputs"]
    assertions = {a["assertion"]: a for a in dataset["inputFacets"]["dataQualityAssertions"]["assertions"]}
    quality = result.results["data_quality_metrics"]
    for rule, rejected in quality["rejected_by_reason"].items():
        assert (assertions[rule]["success"], assertions[rule]["actual"]) == (rejected == 0, str(rejected))
    assert any(rejected for rejected in quality["rejected_by_reason"].values())
    alert = assertions["high_data_loss_rate"]
    assert alert["success"] is False and alert["expected"] == "<= 10.0"


# -- 8. one type vocabulary; custom facets with shipped schemas ----------------


def test_every_column_type_is_in_the_one_vocabulary(spec, tricky, tmp_path):
    run_engine(tricky, tmp_path / "out")
    for event in _valid(_record(tmp_path / "out")):
        for dataset in event["inputs"] + event["outputs"]:
            for field in dataset["facets"]["schema"]["fields"]:
                assert field["type"] in VOCABULARY or re.fullmatch(r"decimal\(\d+,\d+\)", field["type"]), field


@pytest.mark.parametrize("name, expected", [("int64", "bigint"), ("int32", "integer"), ("number", "double"),
                                            ("decimal128(18, 2)", "decimal(18,2)"), ("date32[day]", "date"),
                                            ("timestamp[ns, tz=UTC]", "timestamp"), ("bool", "boolean"),
                                            ("large_string", "string"), ("list<item: int64>", "array"),
                                            ("object", "struct"),
                                            # PostgreSQL's types as a database source stores them
                                            ("date", "date"), ("numeric(12,2)", "decimal(12,2)"),
                                            ("numeric", "decimal(38,18)"), ("text", "string"),
                                            ("character varying", "string"), ("character", "string"),
                                            ("integer", "integer"), ("smallint", "smallint"), ("bigint", "bigint"),
                                            ("double precision", "double"), ("real", "float"),
                                            ("timestamp with time zone", "timestamp"), ("boolean", "boolean")])
def test_arrow_pandas_and_sql_names_map_onto_the_vocabulary(name, expected):
    assert column_type(name) == expected


def _shipped_schemas():
    """The registry of the official schemas plus the engine's, by the `_schemaURL` they have."""
    registry = openlineage_schemas.registry()
    for path in (ROOT / lineage_events.SCHEMA_FOLDER).glob("*.json"):
        url = f"{lineage_events.SCHEMA_HOME}{lineage_events.SCHEMA_FOLDER}/{path.name}"
        registry = registry.with_resource(url, DRAFT202012.create_resource(json.loads(path.read_text())))
    return registry


def test_custom_facets_validate_against_their_shipped_schemas(spec, tmp_path):
    for index in range(2):
        write_csv(tmp_path / "in" / f"day-{index}.csv", TRICKY_ROWS[index::2])
    run_engine(tmp_path / "in", tmp_path / "out")
    write_csv(tmp_path / "in" / "day-2.csv", TRICKY_ROWS[:4])
    run_engine(tmp_path / "in", tmp_path / "out", **{"lineage.node_events": True})
    registry = _shipped_schemas()
    custom = [(event, facet) for event in _valid(_record(tmp_path / "out"))
              for _, facet in openlineage_schemas.iter_facets(event)
              if not facet["_schemaURL"].startswith(openlineage_schemas.OFFICIAL_SPEC_PREFIX)]
    kinds = {facet["_schemaURL"].rsplit("/", 1)[-1] for _, facet in custom}
    assert kinds == {"SalesEngineRunFacet", "SalesEngineInputFacet"}
    for event, facet in custom:
        assert facet["_producer"] == event["producer"] == lineage_events.PRODUCER
        location = facet["_schemaURL"].removeprefix(lineage_events.SCHEMA_HOME).split("#", 1)[0]
        assert (ROOT / location).is_file(), location
        validator = Draft202012Validator({"$ref": facet["_schemaURL"]}, registry=registry)
        assert not list(validator.iter_errors(facet)), facet


def test_the_schemas_ship_with_the_package():
    from importlib.resources import files

    shipped = files("engine.lineage").joinpath("schemas")
    assert {p.name for p in shipped.iterdir() if p.name.endswith(".json")} >= {
        "SalesEngineRunFacet.json", "SalesEngineInputFacet.json"}
