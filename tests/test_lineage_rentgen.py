"""A real OpenLineage consumer: the engine's events delivered to Data.Rentgen and read back
through its REST API.

Data.Rentgen 0.7.2 (tests/rentgen_server.py, in its own Python 3.12 environment) runs on
127.0.0.1 against a throw-away PostgreSQL (tests/postgres_server.py). The engine is run
twice by its real CLI, with its normal OpenLineage configuration (an `openlineage.yml`
named by OPENLINEAGE_CONFIG: the HTTP transport, endpoint `v1/openlineage`, a Data.Rentgen
personal token as ApiKey auth): once successfully, then once failing on a malformed line
of the same input after START. The test then polls the REST API (with a deadline: the
consumer is asynchronous) for the job, both runs with their statuses, the input and output
datasets and the column lineage, each compared with the events the engine recorded.

In production Data.Rentgen's HTTP ingestion publishes each event to Kafka and its consumer
reads them from there into PostgreSQL. No Kafka broker can be installed on this machine,
so FastStream's in-memory `TestKafkaBroker` stands in for Kafka between Data.Rentgen's own
ingestion app and its own consumer (tests/rentgen_launcher.py): both apps, their brokers,
the event validation, parsing and saving are Data.Rentgen's; only the transport between
the two brokers is in memory. What is measured here is written up in
docs/lineage-consumers.md ("What consumers show").
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml
from openlineage.client.uuid import generate_new_uuid

from conftest import engine_command, write_csv
from engine import __version__ as engine_version
from engine.lineage.delivery import PENDING_NAME, RECORD_NAME, REJECTED_NAME
from postgres_server import postgres_server  # noqa: F401 - the fixture rentgen_server stores into
from rentgen_server import rentgen_server  # noqa: F401 - the fixture
from test_modes import TRICKY_ROWS

# the first run creates Data.Rentgen's virtual environment: ~25 s idle, minutes on a busy machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NAMESPACE, JOB = "sales-engine", "sales_analytics"  # the engine's defaults (lineage.namespace, .job_name)
#: How long Data.Rentgen may take to show what the engine sent (a busy 2-core machine).
DEADLINE = 120.0
#: Data.Rentgen's relation type for a column-lineage transformation: its `subtype` (with
#: `masking`: the masking variant), UNKNOWN without one (its consumer's column_lineage.py).
MASKING = {"MASKED": "TRANSFORMATION_MASKING", "TRANSFORMATION": "TRANSFORMATION_MASKING",
           "AGGREGATION": "AGGREGATION_MASKING"}


# -- helpers ------------------------------------------------------------------


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _engine(server, workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`engine run ...` configured for Data.Rentgen the standard OpenLineage way: an
    openlineage.yml named by OPENLINEAGE_CONFIG (no other OPENLINEAGE_* variable, no other
    openlineage.yml: HOME and the working folder are the test's)."""
    config = workdir / "openlineage.yml"
    config.write_text(yaml.safe_dump(server.openlineage_config()))
    base = {key: value for key, value in os.environ.items() if not key.startswith("OPENLINEAGE")}
    return subprocess.run(engine_command("run", *args), capture_output=True, text=True, cwd=workdir, timeout=300,
                          env={**base, "HOME": str(workdir), "PYTHONUNBUFFERED": "1",
                               "OPENLINEAGE_CONFIG": str(config), **(env or {})})


def eventually(server, probe, timeout: float = DEADLINE):
    """`probe()`'s value once it stops failing (an AssertionError, a KeyError or an HTTP
    error: not there yet); after `timeout` seconds its last failure, with Data.Rentgen's log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except (AssertionError, KeyError, StopIteration, requests.RequestException) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"Data.Rentgen did not show it within {timeout:g} s: {error!r}\n"
                                     f"--- Data.Rentgen's log ---\n{server.log_tail()}") from error
        time.sleep(0.5)


def _run_lineage(server, run_id: str, since: str) -> dict:
    return server.get("/v1/runs/lineage", start_node_id=run_id, since=since, direction="BOTH",
                      granularity="RUN", include_column_lineage="true")


def _expected_column_lineage(event: dict) -> tuple[dict, dict]:
    """The column lineage of `event`'s outputs as Data.Rentgen stores it: direct relations
    {(source, target): {(target column, source column, type)}} from DIRECT transformations,
    indirect ones {(source, target): {(source column, type)}} from INDIRECT transformations
    (per column or dataset-wide: Data.Rentgen keeps no target column for them)."""

    def kind(transformation: dict) -> str:
        subtype = transformation.get("subtype")
        if not subtype:
            return "UNKNOWN"
        return MASKING.get(subtype, "UNKNOWN") if transformation.get("masking") else subtype

    direct, indirect = collections.defaultdict(set), collections.defaultdict(set)
    for output in event["outputs"]:
        facet = output["facets"]["columnLineage"]
        for column, field in facet["fields"].items():
            for source in field["inputFields"]:
                for transformation in source["transformations"]:
                    key = (source["name"], output["name"])
                    if transformation["type"] == "DIRECT":
                        direct[key].add((column, source["field"], kind(transformation)))
                    else:
                        indirect[key].add((source["field"], kind(transformation)))
        for source in facet["dataset"]:
            for transformation in source["transformations"]:
                indirect[(source["name"], output["name"])].add((source["field"], kind(transformation)))
    return dict(direct), dict(indirect)


def _shown_column_lineage(lineage: dict) -> tuple[dict, dict]:
    """Data.Rentgen's column lineage (a lineage answer) in _expected_column_lineage's form."""
    names = {key: dataset["name"] for key, dataset in lineage["nodes"]["datasets"].items()}
    direct, indirect = collections.defaultdict(set), collections.defaultdict(set)
    for relation in lineage["relations"]["direct_column_lineage"]:
        key = (names[relation["from"]["id"]], names[relation["to"]["id"]])
        for column, sources in relation["fields"].items():
            direct[key] |= {(column, source["field"], kind) for source in sources for kind in source["types"]}
    for relation in lineage["relations"]["indirect_column_lineage"]:
        key = (names[relation["from"]["id"]], names[relation["to"]["id"]])
        indirect[key] |= {(source["field"], kind) for source in relation["fields"] for kind in source["types"]}
    return dict(direct), dict(indirect)


# -- the two runs -------------------------------------------------------------


@pytest.fixture(scope="module")
def delivered(rentgen_server, tmp_path_factory):
    """A good run, then a run of the same job failing on its input after START (same input
    file, same output folder); their events as the engine recorded them, by run id."""
    workdir = tmp_path_factory.mktemp("rentgen-runs")
    source, output = workdir / "in" / "sales.csv", workdir / "out"
    since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)).isoformat()
    write_csv(source, TRICKY_ROWS)
    good = _engine(rentgen_server, workdir, str(source), "--output", str(output))
    assert good.returncode == 0, good.stderr
    write_csv(source, [*TRICKY_ROWS[:3], ("2024-03-02", "P1", "5.00", "C1", "a fifth field")])
    failed = _engine(rentgen_server, workdir, str(source), "--output", str(output))
    assert failed.returncode == 3 and "expected 4 fields, found 5" in failed.stderr, failed.stderr
    events = _lines(output / "lineage" / RECORD_NAME)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE", "START", "FAIL"]
    # the backend took every event: nothing refused, nothing kept for replay
    assert not (output / "lineage" / REJECTED_NAME).exists(), _lines(output / "lineage" / REJECTED_NAME)
    assert not (output / "lineage" / PENDING_NAME).exists()
    good_id, failed_id = events[0]["run"]["runId"], events[2]["run"]["runId"]
    return {"source": str(source), "output": output, "since": since, "good": good_id, "failed": failed_id,
            "events": {good_id: events[:2], failed_id: events[2:]}}


def test_the_engines_run_ids_are_uuidv7(delivered):
    """Data.Rentgen takes only UUIDv7 run ids (its pydantic models: `runId: UUID7`, the
    parent's too); the engine's come from openlineage's generate_new_uuid."""
    assert uuid.UUID(delivered["good"]).version == uuid.UUID(delivered["failed"]).version == 7


def test_the_job_is_there(rentgen_server, delivered):
    def job():
        page = rentgen_server.get("/v1/jobs", search_query=JOB)
        return next(item for item in page["items"] if item["data"]["name"] == JOB)

    item = eventually(rentgen_server, job)
    found = item["data"]
    # a job namespace that is not a URL is a location of type "unknown" named by it
    assert (found["location"]["name"], found["location"]["type"]) == (NAMESPACE, "unknown")
    assert found["type"] == "HAMILTON_JOB"  # the jobType facet: integration HAMILTON, jobType JOB
    # the processing_engine run facet becomes tags of the job
    tags = {tag["name"]: {value["value"] for value in tag["values"]} for tag in item["tags"]}
    assert tags["openlineage_adapter.version"] == {engine_version}
    assert tags["pandas.version"] == {pd.__version__}


def test_both_runs_with_their_statuses(rentgen_server, delivered):
    def runs():
        page = rentgen_server.get("/v1/runs", run_id=[delivered["good"], delivered["failed"]])
        found = {item["id"]: item for item in page["items"]}
        assert set(found) == {delivered["good"], delivered["failed"]}, found
        statuses = (found[delivered["good"]]["data"]["status"], found[delivered["failed"]]["data"]["status"])
        assert statuses == ("SUCCEEDED", "FAILED"), statuses  # once the last events are saved
        return found

    found = eventually(rentgen_server, runs)
    good, failed = found[delivered["good"]], found[delivered["failed"]]
    assert good["job"]["name"] == failed["job"]["name"] == JOB
    assert good["data"]["job_id"] == failed["data"]["job_id"]
    for run in (good, failed):
        started, ended = run["data"]["started_at"], run["data"]["ended_at"]
        assert started and ended and dt.datetime.fromisoformat(started) <= dt.datetime.fromisoformat(ended)
        assert run["data"]["expected_start_at"] is None  # not scheduled: no nominalTime facet
    complete = delivered["events"][delivered["good"]][1]
    assert good["statistics"]["inputs"]["total_rows"] == complete["inputs"][0]["inputFacets"]["inputStatistics"][
        "rowCount"] == len(TRICKY_ROWS)
    assert good["statistics"]["outputs"]["total_datasets"] == len(complete["outputs"]) == 10


def test_the_input_and_output_datasets(rentgen_server, delivered):
    complete = delivered["events"][delivered["good"]][1]
    published = {d["name"]: d for d in complete["outputs"]}

    def lineage(run_id):
        def probe():
            answer = _run_lineage(rentgen_server, run_id, delivered["since"])
            assert len([r for r in answer["relations"]["outputs"] if r["from"]["kind"] == "RUN"]) == 10, answer
            return answer
        return eventually(rentgen_server, probe)

    good = lineage(delivered["good"])
    datasets = good["nodes"]["datasets"]
    (read,) = [r for r in good["relations"]["inputs"] if r["to"] == {"kind": "RUN", "id": delivered["good"]}]
    source = datasets[read["from"]["id"]]
    # namespace `file` becomes the location file://unknown; the name is the absolute path
    assert source["name"] == delivered["source"] and source["location"]["type"] == "file"
    assert (read["num_rows"], read["num_files"]) == (len(TRICKY_ROWS), 1)
    written = {datasets[r["to"]["id"]]["name"]: r for r in good["relations"]["outputs"] if r["from"]["kind"] == "RUN"}
    assert set(written) == set(published)
    for name, relation in written.items():
        assert relation["types"] == ["CREATE"], name  # lifecycleStateChange CREATE: a first publication
        assert relation["num_rows"] == published[name]["outputFacets"]["outputStatistics"].get("rowCount"), name
        schema = datasets[relation["to"]["id"]]["schema"]
        assert [f["name"] for f in schema["fields"]] == [f["name"] for f in published[name]["facets"]["schema"][
            "fields"]], name

    # the failed run read the same file and lists the outputs it was to publish: Data.Rentgen
    # shows them as its outputs, with no write type and no statistics
    failed = lineage(delivered["failed"])
    names = {key: dataset["name"] for key, dataset in failed["nodes"]["datasets"].items()}
    read = [names[r["from"]["id"]] for r in failed["relations"]["inputs"] if r["to"]["kind"] == "RUN"]
    assert read == [delivered["source"]]
    planned = [r for r in failed["relations"]["outputs"] if r["from"] == {"kind": "RUN", "id": delivered["failed"]}]
    assert {names[r["to"]["id"]] for r in planned} == set(published)
    assert all(r["types"] == [] and r["num_rows"] is None for r in planned), planned


def test_column_lineage_arrives_as_the_engine_sent_it(rentgen_server, delivered):
    complete = delivered["events"][delivered["good"]][1]
    expected_direct, expected_indirect = _expected_column_lineage(complete)
    assert len(expected_direct) == len(expected_indirect) == 10  # every output, from the one input

    def shown():
        direct, indirect = _shown_column_lineage(_run_lineage(rentgen_server, delivered["good"], delivered["since"]))
        assert (direct, indirect) == (expected_direct, expected_indirect)
        return direct, indirect

    direct, indirect = eventually(rentgen_server, shown)
    daily = (delivered["source"], str(delivered["output"] / "daily_sales_summary.csv"))
    assert {("total_amount", "amount", "AGGREGATION"), ("date", "date", "TRANSFORMATION")} <= direct[daily]
    assert ("date", "GROUP_BY") in indirect[daily]


def test_a_parent_run_id_must_be_uuidv7(rentgen_server, tmp_path):
    """A UUIDv7 parent run is linked (and a scheduled run's nominal time shown as its
    expected times); any other UUID is refused with 422 at ingestion and the engine records
    the refusal once (rejected.jsonl), keeps nothing for replay, exits 0."""
    source = write_csv(tmp_path / "sales.csv", TRICKY_ROWS)
    parent = {"OPENLINEAGE_PARENT_JOB_NAMESPACE": "airflow", "OPENLINEAGE_PARENT_JOB_NAME": "nightly.sales"}
    parent_v7 = str(generate_new_uuid())
    linked = _engine(rentgen_server, tmp_path, str(source), "--output", str(tmp_path / "v7"),
                     "--nominal-time", "2024-05-01T02:00:00Z/2024-05-02T02:00:00Z",
                     env={**parent, "OPENLINEAGE_PARENT_RUN_ID": parent_v7})
    refused = _engine(rentgen_server, tmp_path, str(source), "--output", str(tmp_path / "v4"),
                      env={**parent, "OPENLINEAGE_PARENT_RUN_ID": str(uuid.uuid4())})
    assert linked.returncode == refused.returncode == 0, (linked.stderr, refused.stderr)

    assert not (tmp_path / "v7" / "lineage" / REJECTED_NAME).exists()
    run_id = _lines(tmp_path / "v7" / "lineage" / RECORD_NAME)[0]["run"]["runId"]

    def linked_run():
        (item,) = rentgen_server.get("/v1/runs", run_id=run_id)["items"]
        assert item["data"]["status"] == "SUCCEEDED"
        return item

    shown = eventually(rentgen_server, linked_run)["data"]
    assert shown["parent_run_id"] == parent_v7
    assert (shown["expected_start_at"], shown["expected_end_at"]) == ("2024-05-01T02:00:00Z", "2024-05-02T02:00:00Z")

    rejected = _lines(tmp_path / "v4" / "lineage" / REJECTED_NAME)
    assert [(r["event"]["eventType"], r["status"]) for r in rejected] == [("START", 422), ("COMPLETE", 422)]
    (detail,) = json.loads(rejected[0]["body"])["error"]["details"]
    assert detail["location"] == ["body", "run", "facets", "parent", "run", "runId"]
    assert detail["code"] == "uuid_version" and detail["context"] == {"expected_version": 7}
    assert not (tmp_path / "v4" / "lineage" / PENDING_NAME).exists()
    refused_id = rejected[0]["event"]["run"]["runId"]
    assert rentgen_server.get("/v1/runs", run_id=refused_id)["items"] == []  # refused before Kafka: never stored
