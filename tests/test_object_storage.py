"""Object storage as input and output of `engine run`, against a real S3 API server
(moto_server on 127.0.0.1, tests/s3_server.py): the same bytes as a local run in every
mode, outputs published all at once, workers reading for themselves, credentials never
shown, and one clear line for every bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import PUBLISHED_FILES, free_port, published_bytes, run_cli, run_engine, write_csv
from engine.config import StorageConfig
from engine.errors import ConfigurationError, EngineError, InputDataError, ServiceError
from engine.governance.audit import describe_files, read_records
from engine.observability.history import read_history
from engine.sources.generate import generate_sales
from engine.sources.object_store import filesystem, list_objects, storage_errors
from engine.storage.objects import PUBLISHED_NAME, ObjectStorageOutput
from openlineage_schemas import spec_available, validate_event
from s3_server import failing_store, s3, s3_server  # noqa: F401  (fixtures)

INPUT_ERROR, CONFIGURATION_ERROR, SERVICE_ERROR = 3, 2, 5
#: the outputs that name no input file (the quarantine names each rejected row's file)
SAME_BYTES = tuple(name for name in PUBLISHED_FILES if name != "rejected_rows.parquet")
GOOD_ROWS = [("2024-01-01", "P1", "10.00", "C1"), ("2024-01-02", "P2", "5.00", "C2"),
             ("2024-01-02", "P3", "7.25", "")]

pytestmark = pytest.mark.usefixtures("isolated_openlineage_config")


def _sales_lines(folder: Path, rows: int, seed: int) -> list[bytes]:
    """The lines (header first) of a generated, dirty sales CSV of `rows` rows."""
    path = folder / f"generated-{seed}.csv"
    generate_sales(path, rows, seed=seed, days=120, products=50, customers=400)
    return path.read_bytes().splitlines(keepends=True)


def _csv_objects(folder: Path, rows: int = 3000, seed: int = 11) -> dict[str, bytes]:
    """Three CSV objects from one generated dataset: plain, gzip and zstd."""
    lines = _sales_lines(folder, rows, seed)
    header, body = lines[0], lines[1:]
    third = len(body) // 3
    parts = [header + b"".join(part) for part in (body[:third], body[third:2 * third], body[2 * third:])]
    return {"2026-01.csv": parts[0], "2026-02.csv.gz": gzip.compress(parts[1]),
            "2026-03.csv.zst": zstandard.compress(parts[2])}


def _parquet_objects(folder: Path, rows: int = 3000, seed: int = 12) -> dict[str, bytes]:
    """Two hive-partitioned Parquet files of text columns, several row groups each."""
    table = pacsv.read_csv(pa.BufferReader(b"".join(_sales_lines(folder, rows, seed))),
                           convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(
                               ("date", "product_id", "amount", "customer_id"), pa.string())))
    half = table.num_rows // 2
    objects = {}
    for name, part in (("region=north/part-0.parquet", table.slice(0, half)),
                       ("region=south/part-0.parquet", table.slice(half))):
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink, row_group_size=300)
        objects[name] = sink.getvalue().to_pybytes()
    return objects


def _write_local(folder: Path, objects: dict[str, bytes]) -> Path:
    for name, data in objects.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _upload(server, bucket: str, prefix: str, objects: dict[str, bytes]) -> None:
    client = server.boto3()
    for name, data in objects.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data)


def _assert_same_outputs(output: Path, reference: Path, url_prefix: str, local_folder: Path) -> None:
    """`output` (a run on S3 objects) holds `reference`'s bytes (a local run of the same
    files); the quarantine the same rows, each naming its object instead of its file."""
    assert {name: (output / name).read_bytes() for name in SAME_BYTES} == \
        {name: (reference / name).read_bytes() for name in SAME_BYTES}
    rejected = pq.read_table(output / "rejected_rows.parquet").to_pylist()
    for row in rejected:
        row["file"] = str(local_folder / row["file"].removeprefix(url_prefix + "/"))
    assert rejected == pq.read_table(reference / "rejected_rows.parquet").to_pylist()
    assert rejected, "the generated data has rejected rows"


@pytest.fixture(scope="module")
def csv_on_s3(s3_server, tmp_path_factory):
    """Plain, gzip and zstd CSV objects in a bucket, and a local pandas run of the same files."""
    folder = tmp_path_factory.mktemp("csv")
    objects = _csv_objects(folder)
    stored = _stored_with_reference(s3_server, folder, "csv", "sales", objects,
                                    {"notes.txt.bak": b"not matched by the glob"}, "2026-*.csv*")
    return {**stored, "objects": objects}


@pytest.fixture(scope="module")
def parquet_on_s3(s3_server, tmp_path_factory):
    """Hive-partitioned Parquet objects under a prefix, and a local pandas run of the same folder."""
    folder = tmp_path_factory.mktemp("parquet")
    return _stored_with_reference(s3_server, folder, "parquet", "raw", _parquet_objects(folder),
                                  {"_SUCCESS": b"", ".hidden.parquet": b"not input"}, "")


def _stored_with_reference(server, folder: Path, bucket_name: str, prefix: str, objects: dict[str, bytes],
                           not_input: dict[str, bytes], pattern: str) -> dict:
    """`objects` in a new bucket under `prefix` (beside objects that are `not_input`), the
    same files in a local folder, and a local pandas run of them (`pattern` in the folder,
    or the whole folder)."""
    local = _write_local(folder / "sales", objects)
    bucket = server.new_bucket(bucket_name)
    _upload(server, bucket, prefix, {**objects, **not_input})
    reference = folder / "reference"
    run_engine(local / pattern if pattern else local, reference, mode="pandas")
    return {"bucket": bucket, "local": local, "reference": reference}


# (a) the same bytes as a local run, in every mode ---------------------------------------

@pytest.mark.parametrize("mode", ["pandas", "dask", pytest.param("distributed", marks=pytest.mark.slow)])
def test_a_csv_glob_on_s3_gives_the_bytes_of_a_local_run(s3, csv_on_s3, tmp_path, mode):
    url = f"s3://{csv_on_s3['bucket']}/sales"
    settings = {"cluster.workers": 2} if mode == "distributed" else {}
    result = run_engine(f"{url}/2026-*.csv*", tmp_path / "out", mode=mode, partition_size="16KB", **settings)
    _assert_same_outputs(tmp_path / "out", csv_on_s3["reference"], url, csv_on_s3["local"])
    files = result.report["input"]["files"]
    assert [f["path"] for f in files] == [f"{url}/{name}" for name in sorted(csv_on_s3["objects"])]
    assert result.report["input"]["partitions"] > 3  # the plain object is read in byte ranges


@pytest.mark.parametrize("mode", ["pandas", "dask", pytest.param("distributed", marks=pytest.mark.slow)])
def test_a_parquet_prefix_on_s3_gives_the_bytes_of_a_local_run(s3, parquet_on_s3, tmp_path, mode):
    url = f"s3://{parquet_on_s3['bucket']}/raw"
    settings = {"cluster.workers": 2} if mode == "distributed" else {}
    result = run_engine(f"{url}/", tmp_path / "out", mode=mode, partition_size="4KB", **settings)
    _assert_same_outputs(tmp_path / "out", parquet_on_s3["reference"], url, parquet_on_s3["local"])
    assert [f["path"] for f in result.report["input"]["files"]] == [
        f"{url}/region=north/part-0.parquet", f"{url}/region=south/part-0.parquet"]
    assert result.report["input"]["partitions"] > 2  # row groups, read separately


def test_the_cli_reads_a_glob_on_s3(s3, csv_on_s3, tmp_path):
    url = f"s3://{csv_on_s3['bucket']}/sales"
    done = run_cli("run", f"{url}/2026-*.csv*", "--output", str(tmp_path / "out"), "--mode", "dask")
    assert done.returncode == 0, done.stderr
    _assert_same_outputs(tmp_path / "out", csv_on_s3["reference"], url, csv_on_s3["local"])


def test_input_datasets_on_s3_are_named_by_the_naming_conventions(s3, csv_on_s3, tmp_path):
    bucket = csv_on_s3["bucket"]
    run_engine(f"s3://{bucket}/sales/2026-*.csv*", tmp_path / "out", mode="pandas")
    events = [json.loads(line) for line in (tmp_path / "out" / "lineage" / "events.jsonl").read_text().splitlines()]
    complete = next(event for event in events if event["eventType"] == "COMPLETE")
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        (f"s3://{bucket}", f"sales/{name}") for name in sorted(csv_on_s3["objects"])]
    for dataset in complete["inputs"]:
        assert dataset["facets"]["storage"]["storageLayer"] == "s3"
        assert dataset["facets"]["dataSource"]["uri"] == f"s3://{bucket}"
        assert dataset["facets"]["dataSource"]["name"] == f"s3://{bucket}"
    column_inputs = {(f["namespace"], f["name"]) for output in complete["outputs"]
                     for column in output["facets"]["columnLineage"]["fields"].values()
                     for f in column["inputFields"]}
    assert column_inputs == {(f"s3://{bucket}", f"sales/{name}") for name in csv_on_s3["objects"]}
    if spec_available():
        for event in events:
            validate_event(event)


# (b) outputs on object storage: published all at once -----------------------------------

def _objects(server, bucket: str) -> dict[str, tuple[str, int]]:
    """Every object of `bucket`: key -> (ETag, size): what any reader can see."""
    pages = server.boto3().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"]: (item["ETag"], item["Size"]) for page in pages for item in page.get("Contents", [])}


def _get(server, bucket: str, key: str) -> bytes:
    return server.boto3().get_object(Bucket=bucket, Key=key)["Body"].read()


def _run_id(stdout: str) -> str:
    return re.search(r"^run (\S+) \(", stdout, re.MULTILINE).group(1)


def _storage_config(tmp_path: Path, **storage) -> Path:
    import yaml

    path = tmp_path / "storage.yaml"
    path.write_text(yaml.safe_dump({"storage": {"work_dir": str(tmp_path / "work"), **storage}}))
    return path


def _local_reference(source: Path, output: Path) -> dict[str, bytes]:
    run_engine(source, output, mode="pandas")
    return published_bytes(output)


def test_outputs_on_s3_are_published_all_at_once_and_old_runs_pruned(s3, tmp_path, session_audit_log):
    bucket = s3.new_bucket("out")
    url = f"s3://{bucket}/reports/daily"
    config = _storage_config(tmp_path, keep_runs=1)
    inputs = [write_csv(tmp_path / f"in{i}" / "sales.csv", GOOD_ROWS[: i + 1] + [("2024-02-0" + str(i + 1), "P9",
                                                                                 "1.5", "C9")]) for i in range(3)]
    run_ids = []
    for number, source in enumerate(inputs):
        expected = _local_reference(source, tmp_path / f"reference{number}")
        done = run_cli("run", str(source), "--output", url, "--mode", "pandas", "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert f"outputs: {url}" in done.stdout
        run_id = _run_id(done.stdout)
        run_ids.append(run_id)
        # the published names hold exactly a local run's bytes, labelled with the run
        assert {name: _get(s3, bucket, f"reports/daily/{name}") for name in PUBLISHED_FILES} == expected
        head = s3.boto3().head_object(Bucket=bucket, Key="reports/daily/daily_sales_summary.csv")
        assert head["Metadata"] == {"run-id": run_id}
        # the commit point names the run and every file of it, which never change
        manifest = json.loads(_get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}"))
        assert manifest["run_id"] == run_id
        listed = _objects(s3, bucket)
        for entry in manifest["files"]:
            assert entry["key"] == f"reports/daily/runs/{run_id}/{entry['name']}"
            data = _get(s3, bucket, entry["key"])
            assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])
            assert listed[entry["key"]][0].strip('"') == entry["etag"]
            assert data == _get(s3, bucket, f"reports/daily/{entry['name']}")
        assert set(PUBLISHED_FILES) <= {entry["name"] for entry in manifest["files"]}
        # the work folder shows what the URL shows
        assert published_bytes(tmp_path / "work") == expected
    folders = {key.split("/")[3] for key in _objects(s3, bucket) if key.startswith("reports/daily/runs/")}
    assert folders == set(run_ids[-2:])  # the published run and keep_runs (1) before it

    events = [json.loads(line) for line in (tmp_path / "work" / "lineage" / "events.jsonl").read_text().splitlines()]
    complete = [event for event in events if event["eventType"] == "COMPLETE"][-1]
    outputs = {(d["namespace"], d["name"]): d for d in complete["outputs"]}
    summary = outputs[(f"s3://{bucket}", "reports/daily/daily_sales_summary.csv")]
    assert summary["facets"]["storage"]["storageLayer"] == "s3"
    assert all(namespace == f"s3://{bucket}" and "/runs/" not in name for namespace, name in outputs)
    start = [event for event in events if event["eventType"] == "START"][-1]
    assert {(d["namespace"], d["name"]) for d in start["outputs"]} <= set(outputs) | {
        (f"s3://{bucket}", f"reports/daily/{name}") for name in PUBLISHED_FILES}
    if spec_available():
        for event in events:
            validate_event(event)

    record = next(r for r in read_records(session_audit_log) if r["run_id"] == run_ids[-1])
    described = {Path(o["path"]).name: o["sha256"] for o in record["outputs"]}  # the work folder's files
    assert {name: hashlib.sha256(_get(s3, bucket, f"reports/daily/{name}")).hexdigest()
            for name in PUBLISHED_FILES} == {name: described[name] for name in PUBLISHED_FILES}


def test_a_failed_run_changes_nothing_a_reader_sees_on_s3(s3, tmp_path):
    bucket = s3.new_bucket("fail")
    url = f"s3://{bucket}/reports/daily"
    config = _storage_config(tmp_path)
    good = write_csv(tmp_path / "in" / "a.csv", GOOD_ROWS)
    assert run_cli("run", str(good), "--output", url, "--mode", "pandas", "--config", str(config)).returncode == 0
    seen = _objects(s3, bucket)
    manifest = _get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}")
    (tmp_path / "in" / "b.csv").write_text("date,product_id,amount\n")  # a bad file among good ones
    done = run_cli("run", str(tmp_path / "in" / "*.csv"), "--output", url, "--mode", "pandas", "--config", str(config))
    assert done.returncode == INPUT_ERROR, done.stderr
    assert _objects(s3, bucket) == seen
    assert _get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}") == manifest


def _fail_upload_part_way(self, fs, run, folder):
    for name in run.names[:3]:
        fs.put_file(str(run.folder / name), f"{folder}/{name}")
    raise PermissionError("Access Denied")


def _interrupt_before_commit(fs, prefix, manifest):
    raise KeyboardInterrupt


@pytest.mark.parametrize("failure, error", [
    (("_upload", _fail_upload_part_way), ServiceError),
    (("_commit", staticmethod(_interrupt_before_commit)), KeyboardInterrupt),
], ids=["upload-refused-part-way", "interrupted-after-upload"])
def test_a_run_stopped_after_staging_changes_nothing_on_s3(s3, tmp_path, monkeypatch, failure, error):
    bucket = s3.new_bucket("stop")
    url = f"s3://{bucket}/reports/daily"
    settings = {"storage.work_dir": str(tmp_path / "work")}
    first = run_engine(write_csv(tmp_path / "a.csv", GOOD_ROWS), url, mode="pandas", **settings)
    seen, local = _objects(s3, bucket), published_bytes(tmp_path / "work")
    monkeypatch.setattr(ObjectStorageOutput, *failure)
    with pytest.raises(error):
        run_engine(write_csv(tmp_path / "b.csv", GOOD_ROWS[:1]), url, mode="pandas", **settings)
    assert _objects(s3, bucket) == seen  # its uploads removed, nothing else touched
    assert json.loads(_get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}"))["run_id"] == first.run_id
    assert published_bytes(tmp_path / "work") == local


def _user(server, name: str, statements: list[dict]) -> dict[str, str]:
    """An IAM user allowed everything on S3, with `statements` (e.g. denials) besides;
    its credentials as storage options (`key`, `secret`)."""
    credentials = server.iam_user(name, ["s3:*"])
    server.boto3("iam").put_user_policy(UserName=name, PolicyName=f"{name}-more", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))
    return credentials


def _deny(actions: list[str], bucket: str, key: str) -> dict:
    return {"Effect": "Deny", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/{key}"}


def _folders(server, bucket: str, prefix: str = "reports/daily") -> set[str]:
    runs = f"{prefix}/runs/"
    return {key[len(runs):].split("/", 1)[0] for key in _objects(server, bucket) if key.startswith(runs)}


@pytest.mark.parametrize("readable", [True, False], ids=["manifest-readable", "manifest-unreadable"])
def test_a_commit_whose_answer_is_lost_keeps_the_run_folder_unless_another_run_is_named(s3, tmp_path, monkeypatch,
                                                                                       readable):
    """The manifest's PUT arrives but its answer does not (a timeout). Read back, the
    manifest names the run: the run is published after all. Not readable (here: the
    identity may no longer read it): it may name the run, so the folder the manifest
    names is kept, and the run fails (exit 5); the next run counts it as published."""
    bucket = s3.new_bucket("lost")
    url = f"s3://{bucket}/reports/daily"
    admin = s3.iam_user(f"admin-{bucket}", ["s3:*", "iam:*"])
    writer = s3.iam_user(f"writer-{bucket}", ["s3:*"])
    settings = {"storage.work_dir": str(tmp_path / "work"), "storage.keep_runs": 1,
                "storage.options": {**writer, "endpoint_url": s3.url}}
    committed = []
    commit = ObjectStorageOutput.__dict__["_commit"]

    def commit_then_lose_the_answer(fs, prefix, manifest):
        fs.pipe_file(f"{prefix}/{PUBLISHED_NAME}", json.dumps(manifest).encode())
        committed.append(manifest["run_id"])
        if not readable:
            s3.boto3("iam", **admin).put_user_policy(
                UserName=f"writer-{bucket}", PolicyName="no-manifest", PolicyDocument=json.dumps({
                    "Version": "2012-10-17", "Statement": [_deny(["s3:GetObject"], bucket, f"reports/daily/{PUBLISHED_NAME}")]}))
        raise TimeoutError("the answer to the PUT timed out")

    with s3.enforced_auth():
        first = run_engine(write_csv(tmp_path / "a.csv", GOOD_ROWS), url, **settings)
        monkeypatch.setattr(ObjectStorageOutput, "_commit", staticmethod(commit_then_lose_the_answer))
        if readable:
            second = run_engine(write_csv(tmp_path / "b.csv", GOOD_ROWS[:2]), url, **settings)
            assert second.run_id == committed[0]
            assert published_bytes(tmp_path / "work") == _local_reference(tmp_path / "b.csv", tmp_path / "reference")
        else:
            with pytest.raises(ServiceError):
                run_engine(write_csv(tmp_path / "b.csv", GOOD_ROWS[:2]), url, **settings)
    manifest = json.loads(_get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}"))
    assert manifest["run_id"] == committed[0] and manifest["previous"] == [first.run_id]
    listed = _objects(s3, bucket)
    assert all(entry["key"] in listed for entry in manifest["files"])  # every key it names is there
    assert _folders(s3, bucket) == {first.run_id, committed[0]}
    if not readable:
        s3.boto3("iam").delete_user_policy(UserName=f"writer-{bucket}", PolicyName="no-manifest")
        monkeypatch.setattr(ObjectStorageOutput, "_commit", commit)
        with s3.enforced_auth():
            third = run_engine(write_csv(tmp_path / "c.csv", GOOD_ROWS), url, **settings)
        manifest = json.loads(_get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}"))
        assert manifest["previous"] == [committed[0]]  # it was published: its folder is the one kept
        assert _folders(s3, bucket) == {committed[0], third.run_id}


def test_a_failure_after_the_commit_is_a_warning_and_the_next_run_repairs_the_names(s3, tmp_path):
    """The store refuses the server-side copies to the published names (and so the removal
    of a name the run no longer publishes) after `_published.json` names the run: the run
    is published all the same, locally too (exit 0, a warning naming the run), and the
    next run refreshes the names and removes the stale one."""
    bucket = s3.new_bucket("names")
    url = f"s3://{bucket}/reports/daily"
    config = _storage_config(tmp_path)
    first = run_cli("run", str(write_csv(tmp_path / "a.csv", GOOD_ROWS)), "--output", url, "--config", str(config))
    assert first.returncode == 0, first.stderr
    # as an earlier run with one more output would have left it
    manifest = json.loads(_get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}"))
    manifest["files"].append({**manifest["files"][0], "name": "old_output.csv"})
    s3.boto3().put_object(Bucket=bucket, Key=f"reports/daily/{PUBLISHED_NAME}", Body=json.dumps(manifest).encode())
    s3.boto3().put_object(Bucket=bucket, Key="reports/daily/old_output.csv", Body=b"stale")

    refused = _user(s3, f"nocopy-{bucket}", [_deny(["s3:PutObject"], bucket, "reports/daily/daily_sales_summary.csv")])
    environment = {"AWS_ACCESS_KEY_ID": refused["key"], "AWS_SECRET_ACCESS_KEY": refused["secret"]}
    source = write_csv(tmp_path / "b.csv", GOOD_ROWS[:2])
    with s3.enforced_auth():
        done = run_cli("run", str(source), "--output", url, "--config", str(config), env=environment)
    assert done.returncode == 0, done.stderr
    run_id = _run_id(done.stdout)
    warning = next(line for line in done.stderr.splitlines() if "could not all be refreshed" in line)
    assert run_id in warning and "the next run repairs them" in warning and "WARNING" in warning.upper()
    assert run_id in (tmp_path / "work" / "pipeline.log").read_text()
    manifest = json.loads(_get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}"))
    assert manifest["run_id"] == run_id and manifest["dropped"] == ["old_output.csv"]
    expected = _local_reference(source, tmp_path / "reference")
    assert published_bytes(tmp_path / "work") == expected  # published locally: the work folder shows the run
    assert read_history(tmp_path / "work" / "run_history.jsonl")[-1]["status"] == "success"
    assert _get(s3, bucket, "reports/daily/daily_sales_summary.csv") != expected["daily_sales_summary.csv"]

    repaired = run_cli("run", str(source), "--output", url, "--config", str(config))
    assert repaired.returncode == 0, repaired.stderr
    assert {name: _get(s3, bucket, f"reports/daily/{name}") for name in PUBLISHED_FILES} == expected
    assert "reports/daily/old_output.csv" not in _objects(s3, bucket)


def test_pruning_keeps_the_folders_of_published_runs_only(s3, tmp_path):
    """keep_runs 1: after each run, its folder and the previous published run's stay. A
    folder a killed run left (never published) is not counted: it is removed, and the
    previous published run's folder kept."""
    bucket = s3.new_bucket("prune")
    url = f"s3://{bucket}/reports/daily"
    settings = {"storage.work_dir": str(tmp_path / "work"), "storage.keep_runs": 1}
    first = run_engine(write_csv(tmp_path / "a.csv", GOOD_ROWS), url, **settings)
    killed = "0000-killed-run"
    s3.boto3().put_object(Bucket=bucket, Key=f"reports/daily/runs/{killed}/daily_sales_summary.csv", Body=b"partial")
    assert _folders(s3, bucket) == {first.run_id, killed}
    second = run_engine(write_csv(tmp_path / "b.csv", GOOD_ROWS[:2]), url, **settings)
    assert _folders(s3, bucket) == {first.run_id, second.run_id}
    assert json.loads(_get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}"))["previous"] == [first.run_id]
    third = run_engine(write_csv(tmp_path / "c.csv", GOOD_ROWS[:1]), url, **settings)
    assert _folders(s3, bucket) == {second.run_id, third.run_id}
    assert json.loads(_get(s3, bucket, f"reports/daily/{PUBLISHED_NAME}"))["previous"] == [second.run_id]


def test_a_missing_output_bucket_fails_before_anything_is_read(s3, csv_on_s3, tmp_path):
    """`--output` names a bucket that does not exist: a usage error (exit 2) naming it,
    before the input is read (no GET of an input object, no listing of its bucket)."""
    missing = f"no-such-output-{csv_on_s3['bucket']}"
    with s3.recording() as recorded:
        started = time.monotonic()
        done = run_cli("run", f"s3://{csv_on_s3['bucket']}/sales/2026-*.csv*", "--output",
                       f"s3://{missing}/reports/daily", "--config", str(_storage_config(tmp_path)))
        elapsed = time.monotonic() - started
        requests = recorded()
    line = _one_error_line(done, CONFIGURATION_ERROR)
    assert f"--output s3://{missing}/reports/daily: the bucket s3://{missing} does not exist" in line
    assert [r for r in requests if f"/{csv_on_s3['bucket']}" in r["url"]] == []
    assert all(r["method"] == "GET" for r in requests)  # nothing written
    assert elapsed < 30
    assert not (tmp_path / "work" / "run_history.jsonl").exists()  # no run started


def test_checking_the_output_writes_nothing(s3, tmp_path):
    bucket = s3.new_bucket("check")
    storage = StorageConfig()
    with s3.recording() as recorded:
        ObjectStorageOutput(f"s3://{bucket}/reports/daily", storage).check()
        requests = recorded()
    assert [r["method"] for r in requests] == ["GET"]
    assert _objects(s3, bucket) == {}
    with pytest.raises(ConfigurationError, match=f"the bucket s3://missing-{bucket} does not exist"):
        ObjectStorageOutput(f"s3://missing-{bucket}/reports", storage).check()
    dead = StorageConfig(options={"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(ServiceError, match="cannot be reached"):
        ObjectStorageOutput(f"s3://{bucket}/reports", dead).check()


def test_nested_config_kwargs_are_merged_with_the_bounded_retries(s3):
    """Merged key by key, and each filesystem with its own copy (botocore rewrites
    `retries` in place: shared, the first client's would become every later one's)."""
    bucket = s3.new_bucket("config")
    default = filesystem(f"s3://{bucket}", {})
    fs = filesystem(f"s3://{bucket}", {"config_kwargs": {"retries": {"max_attempts": 5}, "read_timeout": 30}})
    assert fs.config_kwargs == {"connect_timeout": 5, "read_timeout": 30,
                                "retries": {"max_attempts": 5, "mode": "standard"}}
    for each in (default, fs):
        each.ls(bucket)  # the client is made
    # botocore's max_attempts counts the retries: 3 attempts in all by default
    assert default.s3.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert fs.s3.meta.config.retries == {"mode": "standard", "total_max_attempts": 6}
    assert (fs.s3.meta.config.read_timeout, fs.s3.meta.config.connect_timeout) == (30, 5)


def test_s3n_urls_are_read_as_s3(s3, csv_on_s3, tmp_path):
    bucket = csv_on_s3["bucket"]
    found = list_objects(f"s3n://{bucket}/sales/2026-*.csv*", {}, lambda name: True)
    assert [stored.url for stored in found] == [f"s3n://{bucket}/sales/{name}" for name in sorted(csv_on_s3["objects"])]
    run_engine(f"s3n://{bucket}/sales/2026-*.csv*", tmp_path / "out")
    _assert_same_outputs(tmp_path / "out", csv_on_s3["reference"], f"s3n://{bucket}/sales", csv_on_s3["local"])


# (c) in distributed mode the workers read the objects themselves --------------------------

@pytest.mark.slow
def test_distributed_workers_read_the_objects_themselves(s3, tmp_path, monkeypatch):
    """The workers' own S3 clients say who they are: the nanny gives the worker processes
    (only) AWS_SDK_UA_APP_ID, which botocore adds to its User-Agent (`app/...`). moto's
    request recorder then shows who fetched which bytes: the client only the first 64 KiB
    of each object (checking its header), the workers every byte."""
    folder = tmp_path / "sales"
    lines = _sales_lines(tmp_path, 6000, seed=21)
    objects = {"a.csv": b"".join(lines[:3001]), "b.csv": lines[0] + b"".join(lines[3001:])}
    _write_local(folder, objects)
    bucket = s3.new_bucket("workers")
    _upload(s3, bucket, "sales", objects)
    assert all(len(data) > 65536 for data in objects.values())
    reference = tmp_path / "reference"
    run_engine(folder / "*.csv", reference, mode="pandas")
    monkeypatch.setenv("DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON", repr({"AWS_SDK_UA_APP_ID": "dask-worker"}))
    with s3.recording() as recorded:
        done = run_cli("run", f"s3://{bucket}/sales/*.csv", "--output", str(tmp_path / "out"),
                       "--mode", "distributed", "--workers", "2", "--partition-size", "32KB")
        requests = recorded()
    assert done.returncode == 0, done.stderr
    _assert_same_outputs(tmp_path / "out", reference, f"s3://{bucket}/sales", folder)

    read_by = {"client": {}, "worker": {}}
    for request in requests:
        path = request["url"].split("://", 1)[-1].split("/", 1)[-1].split("?")[0]
        if request["method"] != "GET" or not path.startswith(f"{bucket}/sales/"):
            continue
        who = "worker" if "app/dask-worker" in request["headers"].get("User-Agent", "") else "client"
        first, last = re.fullmatch(r"bytes=(\d+)-(\d+)", request["headers"]["Range"]).groups()
        read_by[who].setdefault(path.rsplit("/", 1)[1], []).append((int(first), int(last)))
    for name, data in objects.items():
        assert all(last < 65536 for _, last in read_by["client"].get(name, [])), read_by["client"]
        covered = sorted(read_by["worker"][name])
        assert covered[0][0] == 0 and max(last for _, last in covered) == len(data) - 1
        assert len(covered) >= 3  # byte ranges, read by the tasks that parse them


# (d) credentials in storage.options are never shown --------------------------------------

def test_credentials_in_storage_options_never_appear(s3, tmp_path, monkeypatch, session_audit_log):
    """Credentials only in the configuration file (none in the environment), valid only for
    an IAM user moto enforces: the run works in distributed mode (the workers got them),
    and neither they nor the endpoint's secret appear in any file or stream."""
    bucket = s3.new_bucket("secret")
    objects = _csv_objects(tmp_path, rows=1500, seed=31)
    _upload(s3, bucket, "sales", objects)
    credentials = s3.iam_user("engine-runner", ["s3:*"])
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    config = _storage_config(tmp_path, options={**credentials, "endpoint_url": s3.url})
    url = f"s3://{bucket}/reports/daily"
    with s3.enforced_auth():
        done = run_cli("run", f"s3://{bucket}/sales/2026-*", "--output", url, "--mode", "distributed",
                       "--workers", "2", "--partition-size", "16KB", "--config", str(config))
        failed = run_cli("run", f"s3://{bucket}/sales/missing.csv", "--output", url, "--mode", "pandas",
                         "--config", str(config))
        manifest = json.loads(s3.boto3(**credentials).get_object(
            Bucket=bucket, Key=f"reports/daily/{PUBLISHED_NAME}")["Body"].read())
    assert done.returncode == 0, done.stderr
    assert manifest["run_id"] == _run_id(done.stdout)
    assert failed.returncode == INPUT_ERROR, failed.stderr
    assert "no such object" in failed.stderr

    texts = {"stdout": done.stdout + failed.stdout, "stderr": done.stderr + failed.stderr,
             "audit log": session_audit_log.read_text(), "_published.json": json.dumps(manifest)}
    for path in (tmp_path / "work").rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert {"pipeline.log", "run_report.json", "events.jsonl"} <= {Path(name).name for name in texts}
    for secret in credentials.values():
        assert [name for name, text in texts.items() if secret in text] == []


# (e) bad input: one line, the right exit code, previous outputs untouched -----------------

@pytest.fixture(scope="module")
def previous_output(tmp_path_factory):
    folder = tmp_path_factory.mktemp("previous")
    run_engine(write_csv(folder / "good.csv", GOOD_ROWS), folder / "out", mode="pandas")
    return folder / "out"


def _one_error_line(done, code: int) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize("source, expected", [
    ("s3://no-such-bucket-4a1b/sales/*.csv", "s3://no-such-bucket-4a1b: no such bucket"),
    ("s3://no-such-bucket-4a1b/sales/a.csv", "s3://no-such-bucket-4a1b: no such bucket"),
    ("s3://{bucket}/sales/missing.csv", "s3://{bucket}/sales/missing.csv: no such object"),
    ("s3://{bucket}/sales/*.parquet", "s3://{bucket}/sales/*.parquet: no object matches this pattern"),
    ("s3://{bucket}/nothing/", "s3://{bucket}/nothing/: no CSV or Parquet object under this prefix"),
    ("s3://{bucket}/sales/2026-*", "s3://{bucket}/sales/header-only.csv: has a header but no data rows"),
])
def test_missing_or_bad_objects_are_input_errors(s3, previous_output, source, expected):
    bucket = s3.new_bucket("bad")
    _upload(s3, bucket, "sales", {"2026-01.csv": b"date,product_id,amount\n2024-01-01,P1,2\n",
                                  "header-only.csv": b"date,product_id,amount\n"})
    if "header-only" in expected:
        _upload(s3, bucket, "sales", {"2026-02-header-only.csv": b"date,product_id,amount\n"})
        expected = expected.replace("header-only.csv", "2026-02-header-only.csv")
    before = published_bytes(previous_output)
    done = run_cli("run", source.format(bucket=bucket), "--output", str(previous_output), "--mode", "pandas")
    assert expected.format(bucket=bucket) in _one_error_line(done, INPUT_ERROR)
    assert published_bytes(previous_output) == before


def test_access_denied_is_an_input_error_refused_credentials_a_service_error(s3, previous_output, tmp_path):
    """Credentials the store accepts but that may not read the input: the input is not
    readable (exit 3). Credentials the store refuses (an unknown key): the store refused
    the login (exit 5, as PostgreSQL for a wrong password), whether the refusal came to a
    listing or to a HEAD of one object (which has no error code of its own), for the
    input or the output."""
    bucket = s3.new_bucket("denied")
    _upload(s3, bucket, "sales", {"a.csv": b"date,product_id,amount\n2024-01-01,P1,2\n"})
    lister = s3.iam_user("lister", ["s3:ListBucket"])  # may list, may not read
    unknown = {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000", "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    before = published_bytes(previous_output)
    with s3.enforced_auth():
        cannot_read = run_cli("run", f"s3://{bucket}/sales/*.csv", "--output", str(previous_output),
                              env={"AWS_ACCESS_KEY_ID": lister["key"], "AWS_SECRET_ACCESS_KEY": lister["secret"]})
        cannot_read_one = run_cli("run", f"s3://{bucket}/sales/a.csv", "--output", str(previous_output),
                                  env={"AWS_ACCESS_KEY_ID": lister["key"], "AWS_SECRET_ACCESS_KEY": lister["secret"]})
        refused_listing = run_cli("run", f"s3://{bucket}/sales/*.csv", "--output", str(previous_output), env=unknown)
        refused_head = run_cli("run", f"s3://{bucket}/sales/a.csv", "--output", str(previous_output), env=unknown)
        refused_output = run_cli("run", str(write_csv(tmp_path / "a.csv", GOOD_ROWS)), "--output",
                                 f"s3://{bucket}/reports", "--config", str(_storage_config(tmp_path)), env=unknown)
    assert f"s3://{bucket}/sales/a.csv: access denied" in _one_error_line(cannot_read, INPUT_ERROR)
    assert f"s3://{bucket}/sales/a.csv: access denied" in _one_error_line(cannot_read_one, INPUT_ERROR)
    endpoint = f"object storage at {s3.url} refused the credentials (InvalidAccessKeyId: "
    assert f"s3://{bucket}/sales/*.csv: {endpoint}" in _one_error_line(refused_listing, SERVICE_ERROR)
    assert f"s3://{bucket}/sales/a.csv: {endpoint}" in _one_error_line(refused_head, SERVICE_ERROR)
    assert f"s3://{bucket}/reports" in _one_error_line(refused_output, SERVICE_ERROR)
    for done in (cannot_read, cannot_read_one, refused_listing, refused_head, refused_output):
        assert lister["secret"] not in done.stderr and "wrong-secret" not in done.stderr
    assert published_bytes(previous_output) == before
    assert not (tmp_path / "work" / "daily_sales_summary.csv").exists()


@pytest.mark.parametrize("status, code, message", [
    (503, "SlowDown", "Please reduce your request rate."),
    (500, "InternalError", "We encountered an internal error. Please try again."),
], ids=["503-slowdown", "500-internal-error"])
def test_a_store_that_keeps_failing_is_a_service_error(previous_output, tmp_path, status, code, message):
    """A store answering 503 SlowDown or 500 InternalError to every request, after the
    bounded retries: the store failed, not the input (exit 5), for input and output."""
    before = published_bytes(previous_output)
    with failing_store(status, code, message) as (url, answered):
        environment = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"}
        started = time.monotonic()
        done = run_cli("run", "s3://any-bucket/sales/*.csv", "--output", str(previous_output), env=environment)
        elapsed = time.monotonic() - started
        retried = answered()
        out = run_cli("run", str(write_csv(tmp_path / "a.csv", GOOD_ROWS)), "--output", "s3://any-bucket/reports",
                      "--config", str(_storage_config(tmp_path)), env=environment)
    line = _one_error_line(done, SERVICE_ERROR)
    assert f"s3://any-bucket/sales/*.csv: object storage at {url} failed the request ({code}: {message})" in line
    assert retried > 1 and elapsed < 60  # retried, within bounds
    assert f"s3://any-bucket/reports: object storage at {url} failed the request" in _one_error_line(out, SERVICE_ERROR)
    assert published_bytes(previous_output) == before
    assert not (tmp_path / "work" / "daily_sales_summary.csv").exists()


@pytest.mark.parametrize("code, status, expected", [
    ("InvalidAccessKeyId", 403, ServiceError), ("SignatureDoesNotMatch", 403, ServiceError),
    ("ExpiredToken", 400, ServiceError), ("InvalidToken", 400, ServiceError),
    ("SlowDown", 503, ServiceError), ("ServiceUnavailable", 503, ServiceError), ("InternalError", 500, ServiceError),
    ("AccessDenied", 403, InputDataError), ("NoSuchKey", 404, InputDataError), ("InvalidRange", 416, InputDataError),
])
def test_the_stores_answer_decides_the_exit_code(code, status, expected):
    """The errors s3fs raises for S3's answers (botocore's ClientError kept as the cause):
    the store refusing the credentials or failing is a ServiceError; what the store says
    about the input object, for credentials it accepts, an input error."""
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    answer = ClientError({"Error": {"Code": code, "Message": "the store's message"},
                          "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2")
    with pytest.raises(EngineError) as raised, storage_errors("s3://b/sales/*.csv", {}):
        raise translate_boto_error(answer)
    assert type(raised.value) is expected
    assert str(raised.value).startswith("s3://b/sales/*.csv: ")


def test_an_unreachable_endpoint_is_a_service_error(s3, previous_output, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    before = published_bytes(previous_output)
    done = run_cli("run", "s3://any-bucket/sales/*.csv", "--output", str(previous_output),
                   env={"AWS_ENDPOINT_URL": dead})
    line = _one_error_line(done, SERVICE_ERROR)
    assert f"s3://any-bucket/sales/*.csv: object storage at {dead} cannot be reached" in line
    assert published_bytes(previous_output) == before
    out = run_cli("run", str(write_csv(tmp_path / "a.csv", GOOD_ROWS)), "--output", "s3://any-bucket/reports",
                  "--config", str(_storage_config(tmp_path)), env={"AWS_ENDPOINT_URL": dead})
    assert "s3://any-bucket/reports: object storage at" in _one_error_line(out, SERVICE_ERROR)
    assert not (tmp_path / "work" / "daily_sales_summary.csv").exists()  # nothing published locally either


def test_without_s3fs_an_s3_url_is_a_configuration_error(s3, tmp_path):
    script = "import sys; sys.modules['s3fs'] = None; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", script, "run", "s3://any-bucket/sales/*.csv", "--output",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    line = _one_error_line(done, CONFIGURATION_ERROR)
    assert "pip install 'sales-engine[s3]'" in line


def test_an_incremental_run_keys_objects_by_their_etag(s3, tmp_path):
    """A prefix is a growing input: a second run reuses what it read of unchanged objects
    (without downloading them to hash) and reads a rewritten object again."""
    bucket = s3.new_bucket("incremental")
    objects = _csv_objects(tmp_path, rows=900, seed=41)
    _upload(s3, bucket, "sales", objects)
    url = f"s3://{bucket}/sales/"
    first = run_engine(url, tmp_path / "out", mode="pandas")
    assert first.report["incremental"]["files_read"] == 3
    with s3.recording() as recorded:
        second = run_engine(url, tmp_path / "out", mode="pandas")
        requests = recorded()
    assert (second.report["incremental"]["files_reused"], second.report["incremental"]["files_read"]) == (3, 0)
    gets = Counter(r["url"].rsplit("/", 1)[1] for r in requests if r["method"] == "GET" and "list-type" not in r["url"])
    assert gets == dict.fromkeys(objects, 1)  # each object's header checked; none downloaded to be hashed
    _upload(s3, bucket, "sales", {"2026-01.csv": objects["2026-01.csv"] + b"2024-01-05,P7,3.50,C1\n"})
    third = run_engine(url, tmp_path / "out", mode="pandas")
    assert (third.report["incremental"]["files_reused"], third.report["incremental"]["files_read"]) == (2, 1)
    run_engine(url, tmp_path / "full", mode="pandas", **{"incremental.enabled": False})
    assert published_bytes(tmp_path / "out") == published_bytes(tmp_path / "full")


def test_audit_descriptions_of_outputs_name_the_url_they_were_published_to(tmp_path):
    path = write_csv(tmp_path / "daily_sales_summary.csv", GOOD_ROWS)
    [entry] = describe_files([path], published_to="s3://bucket/reports/daily/")
    assert entry == {"path": str(path), "size": path.stat().st_size,
                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "url": "s3://bucket/reports/daily/daily_sales_summary.csv"}


def test_the_audit_log_records_objects_by_url_size_and_etag(s3, csv_on_s3, tmp_path, session_audit_log):
    url = f"s3://{csv_on_s3['bucket']}/sales"
    done = run_cli("run", f"{url}/2026-*.csv*", "--output", str(tmp_path / "out"), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    record = next(r for r in read_records(session_audit_log) if r["run_id"] == _run_id(done.stdout))
    listed = _objects(s3, csv_on_s3["bucket"])
    assert record["inputs"] == [
        {"path": f"{url}/{name}", "size": len(data), "sha256": None,
         "etag": listed[f"sales/{name}"][0].strip('"')}
        for name, data in sorted(csv_on_s3["objects"].items())]


def test_an_output_url_that_is_not_object_storage_is_a_usage_error(tmp_path):
    done = run_cli("run", str(write_csv(tmp_path / "a.csv", GOOD_ROWS)), "--output", "ftp://host/reports",
                   "--config", str(_storage_config(tmp_path)))
    assert "--output ftp://host/reports: not a folder or object storage" in _one_error_line(done, CONFIGURATION_ERROR)


def test_a_stores_own_message_loses_the_secret_options_values():
    options = {"key": "AKIAEXAMPLEKEY", "client_kwargs": {"aws_secret_access_key": "s3cr3t-value"},
               "endpoint_url": "http://user:pw@127.0.0.1:9000/path"}
    with pytest.raises(InputDataError) as raised, storage_errors("s3://b/k.csv", options):
        raise PermissionError("denied: AKIAEXAMPLEKEY signed with s3cr3t-value")
    assert str(raised.value) == "s3://b/k.csv: access denied (denied: *** signed with ***)"
    with pytest.raises(ServiceError) as raised, storage_errors("s3://b/k.csv", options):
        raise ConnectionError("refused")
    assert "object storage at http://127.0.0.1:9000 cannot be reached" in str(raised.value)
