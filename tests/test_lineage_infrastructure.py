"""Self-tests of the lineage test infrastructure: schema validation and the HTTP backend.

Proves that `openlineage_schemas.validate_event` accepts events built with the
official openlineage-python client and rejects broken ones with readable
messages, and that `lineage_backend.LineageBackend` receives what the real
`OpenLineageClient` HTTP transport sends, including its failure modes.

Observed behaviour of the openlineage-python 1.54 HTTP transport with default
settings (HttpConfig: timeout=5s; retry=urllib3 Retry(total=5, connect=5,
read=5, backoff_factor=0.3, status_forcelist=[500, 502, 503, 504],
allowed_methods=[HEAD, POST])):

* `emit` is synchronous and raises on failure (the client does not swallow
  transport errors).
* HTTP 500: the POST is retried up to 5 times with backoff sleeps of
  0, 0.6, 1.2, 2.4, 4.8 s. `fail_first=2` -> 3 POSTs, emit succeeds after ~0.6 s.
  Always 500 -> 6 POSTs, emit raises requests.exceptions.RetryError after ~9.0 s.
* Dead port (connection refused): same retry schedule, emit raises
  requests.exceptions.ConnectionError after ~9.0 s.
* Slow backend (answer later than the 5 s timeout): read timeouts are retried
  too (POST is in allowed_methods), so emit raises ConnectionError
  (ReadTimeoutError) after 6 x 5 s + 9 s = ~39 s, and the backend has received
  (and, like a real backend, stored) the same event 6 times.

`"retry": {"total": 0}` in the transport config makes every failure immediate.
"""

from __future__ import annotations

import gzip
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest
import requests
from openlineage.client import OpenLineageClient
from openlineage.client import facet_v2 as facets
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.serde import Serde

import openlineage_schemas
from lineage_backend import LineageBackend, dead_url
from openlineage_schemas import SPEC_MISSING_MESSAGE, spec_available, validate_event

NO_RETRY = {"retry": {"total": 0}}


# -- fixtures and builders ---------------------------------------------------


pytestmark = pytest.mark.usefixtures("isolated_openlineage_config")


@pytest.fixture
def make_client():
    """A factory of real OpenLineageClients with an HTTP transport; closed at teardown."""
    clients = []

    def make(url: str, **transport) -> OpenLineageClient:
        client = OpenLineageClient(config={"transport": {"type": "http", "url": url, **transport}})
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def run_facets() -> dict:
    """Run facets of the kinds the engine emits."""
    return {
        "errorMessage": facets.error_message_run.ErrorMessageRunFacet(
            message="boom", programmingLanguage="python", stackTrace="Traceback ..."
        ),
        "processing_engine": facets.processing_engine_run.ProcessingEngineRunFacet(
            version="1.0.0", name="sales-engine", openlineageAdapterVersion="1.54.0"
        ),
        "nominalTime": facets.nominal_time_run.NominalTimeRunFacet(nominalStartTime=now(), nominalEndTime=now()),
        "parent": facets.parent_run.ParentRunFacet(
            run=facets.parent_run.Run(runId=str(uuid.uuid4())),
            job=facets.parent_run.Job(namespace="sales", name="pipeline"),
            root=facets.parent_run.Root(
                run=facets.parent_run.RootRun(runId=str(uuid.uuid4())),
                job=facets.parent_run.RootJob(namespace="sales", name="pipeline"),
            ),
        ),
    }


def input_dataset() -> InputDataset:
    metrics = facets.data_quality_metrics_input_dataset
    return InputDataset(
        namespace="file",
        name="/data/sales.csv",
        facets={
            "schema": facets.schema_dataset.SchemaDatasetFacet(
                fields=[
                    facets.schema_dataset.SchemaDatasetFacetFields(name="date", type="date"),
                    facets.schema_dataset.SchemaDatasetFacetFields(name="amount", type="float64"),
                ]
            ),
            "dataSource": facets.datasource_dataset.DatasourceDatasetFacet(name="file", uri="file:///data"),
            "storage": facets.storage_dataset.StorageDatasetFacet(storageLayer="file", fileFormat="csv"),
        },
        inputFacets={
            "dataQualityMetrics": metrics.DataQualityMetricsInputDatasetFacet(
                rowCount=3,
                columnMetrics={"amount": metrics.ColumnMetrics(nullCount=0, sum=6.0, min=1.0, max=3.0)},
            )
        },
    )


def output_dataset() -> OutputDataset:
    lineage = facets.column_lineage_dataset
    return OutputDataset(
        namespace="file",
        name="/out/daily_sales_summary.csv",
        facets={
            "columnLineage": lineage.ColumnLineageDatasetFacet(
                fields={
                    "total_amount": lineage.Fields(
                        inputFields=[
                            lineage.InputField(
                                namespace="file",
                                name="/data/sales.csv",
                                field="amount",
                                transformations=[lineage.Transformation(type="DIRECT", subtype="AGGREGATION")],
                            )
                        ]
                    )
                }
            ),
            "lifecycleStateChange": facets.lifecycle_state_change_dataset.LifecycleStateChangeDatasetFacet(
                lifecycleStateChange=facets.lifecycle_state_change_dataset.LifecycleStateChange.OVERWRITE
            ),
        },
        outputFacets={
            "outputStatistics": facets.output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=2, size=100, fileCount=1
            )
        },
    )


def run_event(state: RunState = RunState.COMPLETE) -> RunEvent:
    """A client-built RunEvent carrying run, job, dataset, input and output facets."""
    return RunEvent(
        eventType=state,
        eventTime=now(),
        run=Run(runId=str(uuid.uuid4()), facets=run_facets()),
        job=Job(
            namespace="sales",
            name="daily_sales_summary",
            facets={"jobType": facets.job_type_job.JobTypeJobFacet(processingType="BATCH", integration="HAMILTON")},
        ),
        inputs=[input_dataset()],
        outputs=[output_dataset()],
    )


def event_dict() -> dict:
    return Serde.to_dict(run_event())


def violations_of(event: dict) -> str:
    """The AssertionError message validate_event raises for `event`."""
    with pytest.raises(AssertionError) as raised:
        validate_event(event)
    return str(raised.value)


def post_raw(url: str, body: bytes, headers: dict | None = None, path: str = "/api/v1/lineage") -> int:
    """POST `body` to the backend with urllib (no client, no retries); the HTTP status."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(f"{url}{path}", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# -- schema validation -------------------------------------------------------


def test_client_built_event_is_valid(spec):
    validate_event(event_dict())


def test_every_client_facet_schema_resolves_in_the_registry(spec):
    schema_urls = [facet["_schemaURL"] for _, facet in openlineage_schemas.iter_facets(event_dict())]
    assert len(schema_urls) == 12  # 4 run, 1 job, 4 input, 3 output facets
    assert all(openlineage_schemas.schema_is_known(url) for url in schema_urls), schema_urls


def test_registry_holds_every_spec_file_by_id(spec):
    ids = {json.loads(path.read_text())["$id"] for path in openlineage_schemas.SPEC_DIR.rglob("*.json")}
    registry = openlineage_schemas.registry()
    assert all(schema_id in registry for schema_id in ids)
    assert openlineage_schemas.schema_is_known(openlineage_schemas.RUN_EVENT_SCHEMA_URL)


def test_missing_event_time_fails(spec):
    event = event_dict()
    del event["eventTime"]
    assert "$: 'eventTime' is a required property" in violations_of(event)


def test_bad_event_type_fails(spec):
    event = event_dict()
    event["eventType"] = "DONE"
    assert "$.eventType: 'DONE' is not one of" in violations_of(event)


def test_facet_with_wrong_field_type_fails_against_its_own_schema(spec):
    event = event_dict()
    event["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"] = "three"
    message = violations_of(event)
    assert "$.inputs[0].inputFacets.dataQualityMetrics.rowCount: 'three' is not of type 'integer'" in message
    assert "DataQualityMetricsInputDatasetFacet" in message


def test_formats_are_checked(spec):
    event = event_dict()
    event["eventTime"] = "2024-01-31 10:00:00"  # no 'T', no offset: not RFC 3339
    event["producer"] = "not a uri"
    message = violations_of(event)
    assert "$.eventTime: '2024-01-31 10:00:00' is not a 'date-time'" in message
    assert "$.producer: 'not a uri' is not a 'uri'" in message


def test_every_violation_is_listed(spec):
    event = event_dict()
    event["eventType"] = "DONE"
    event["run"]["facets"]["errorMessage"]["message"] = 42
    event["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] = -1.5
    message = violations_of(event)
    assert "(3 violation(s))" in message
    assert "$.run.facets.errorMessage.message: 42 is not of type 'string'" in message
    assert "$.outputs[0].outputFacets.outputStatistics.rowCount" in message


def test_unknown_official_schema_url_fails(spec):
    event = event_dict()
    event["job"]["facets"]["jobType"]["_schemaURL"] = (
        "https://openlineage.io/spec/facets/9-9-9/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
    )
    assert "$.job.facets.jobType: _schemaURL" in violations_of(event)


def test_custom_facets_need_only_producer_and_schema_url(spec):
    event = event_dict()
    custom = {"_producer": "https://example.com/engine", "_schemaURL": "https://example.com/Custom.json", "x": 1}
    event["run"]["facets"]["custom"] = custom
    validate_event(event)
    del event["run"]["facets"]["custom"]["_producer"]
    assert "$.run.facets.custom: custom facet needs a string _producer" in violations_of(event)


def test_missing_spec_raises_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(openlineage_schemas, "SPEC_DIR", tmp_path / "absent")
    assert not spec_available()
    with pytest.raises(AssertionError, match="OpenLineage JSON Schemas not found") as raised:
        validate_event(event_dict())
    assert str(raised.value) == SPEC_MISSING_MESSAGE
    assert "shared/openlineage-spec" in str(raised.value)


# -- the HTTP backend with the real client -----------------------------------


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_backend_receives_client_events(make_client, compression):
    sent = [run_event(RunState.START), run_event(RunState.COMPLETE)]
    transport = {"compression": compression} if compression else {}
    with LineageBackend() as backend:
        client = make_client(backend.url, **transport)
        for event in sent:
            client.emit(event)
        received = backend.wait_for(2, timeout=5)
        assert backend.requests == 2
        assert backend.validation_errors == []
    assert received == [Serde.to_dict(event) for event in sent]


def test_fail_first_two_is_absorbed_by_the_client_retries(make_client):
    # Default retry (urllib3 Retry total=5, backoff 0.3, 500 in status_forcelist, POST allowed):
    # the client re-POSTs after 0 s and 0.6 s, so emit succeeds on the 3rd POST after ~0.6 s.
    with LineageBackend(fail_first=2) as backend:
        started = time.monotonic()
        make_client(backend.url).emit(run_event())
        elapsed = time.monotonic() - started
        assert backend.requests == 3
        assert backend.received_count == 1
    assert 0.5 < elapsed < 5


def test_fail_first_without_retries_makes_emit_raise(make_client):
    with LineageBackend(fail_first=2) as backend:
        client = make_client(backend.url, **NO_RETRY)
        for _ in range(2):
            with pytest.raises(requests.RequestException):
                client.emit(run_event())
        client.emit(run_event())
        assert (backend.requests, backend.received_count) == (3, 1)


def test_failing_can_be_toggled_at_runtime(make_client):
    with LineageBackend(failing=True) as backend:
        client = make_client(backend.url, **NO_RETRY)
        with pytest.raises(requests.RequestException):
            client.emit(run_event())
        backend.failing = False
        client.emit(run_event())
        assert (backend.requests, backend.received_count) == (2, 1)


def test_dead_url_makes_emit_raise(make_client):
    client = make_client(dead_url(), **NO_RETRY)
    with pytest.raises(requests.ConnectionError):
        client.emit(run_event())


def test_slow_backend_delays_emit_and_can_time_it_out(make_client):
    with LineageBackend(delay=0.3) as backend:
        started = time.monotonic()
        make_client(backend.url).emit(run_event())
        assert time.monotonic() - started >= 0.3
        with pytest.raises(requests.ConnectionError):  # ReadTimeout is a ConnectionError
            make_client(backend.url, timeout=0.1, **NO_RETRY).emit(run_event())


def test_backend_records_invalid_events(spec):
    event = event_dict()
    event["eventType"] = "DONE"
    with LineageBackend() as backend:
        assert post_raw(backend.url, json.dumps(event).encode()) == 201
        assert backend.received_count == 1
        assert len(backend.validation_errors) == 1
        assert "$.eventType: 'DONE' is not one of" in backend.validation_errors[0]
    with LineageBackend(reject_invalid=True) as backend:
        assert post_raw(backend.url, json.dumps(event).encode()) == 400
        assert (backend.received_count, len(backend.validation_errors)) == (0, 1)


def test_backend_accepts_gzip_and_rejects_garbage_and_other_paths():
    body = json.dumps(event_dict()).encode()
    with LineageBackend(validate=False) as backend:
        assert post_raw(backend.url, gzip.compress(body), {"Content-Encoding": "gzip"}) == 201
        assert post_raw(backend.url, b"{not json") == 400
        assert post_raw(backend.url, body, path="/api/v1/other") == 404
        assert post_raw(backend.url, body) == 201
        assert backend.requests == 3  # POSTs to the lineage endpoint only
        assert backend.received_count == 2
        assert backend.events[0] == json.loads(body)


def test_backend_stops_cleanly_and_frees_its_port():
    backend = LineageBackend()
    with backend:
        port = backend.port
        thread = backend._thread
        assert thread.is_alive()
    assert not thread.is_alive()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_wait_for_times_out_with_a_message():
    with LineageBackend() as backend:
        with pytest.raises(AssertionError, match="expected 1 event"):
            backend.wait_for(1, timeout=0.1)
