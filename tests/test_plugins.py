"""Plug-ins: the example source plug-in (examples/plugins/http_json_source.py) reads a
real HTTP JSON API on 127.0.0.1, loaded with `--plugin`, from a configuration file or as
an installed entry point, and gives the same outputs, byte for byte, as the same records
in a CSV file, in pandas and distributed mode. Its failures are the engine's one-line
errors with their exit codes, and adding it touched no module of the engine."""

from __future__ import annotations

import ast
import base64
import csv
import http.server
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyarrow.parquet as pq
import pytest

from conftest import PUBLISHED_FILES, free_port, run_cli, write_csv
from test_modes import TRICKY_ROWS

pytestmark = pytest.mark.usefixtures("isolated_openlineage_config")

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugins" / "http_json_source.py"
TOKEN = "tok-3f9a1c"  # what the API accepts as a bearer token
USER, PASSWORD = "reporting", "pa55-w0rd"  # and as HTTP Basic credentials
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _rows() -> list[tuple]:
    """SPEC's tricky rows and 300 generated dirty ones (quoted amounts with a thousands
    separator, rejects, duplicates): the records the API serves."""
    from engine.sources.generate import generate_sales

    with tempfile.TemporaryDirectory() as folder:
        generated = Path(folder) / "generated.csv"
        generate_sales(generated, 300, seed=11)
        with open(generated, newline="", encoding="utf-8") as handle:
            rows = [tuple(row) for row in list(csv.reader(handle))[1:]]
    return [*TRICKY_ROWS, *rows]


ROWS = _rows()


def _record(row: tuple, number: int) -> str:
    """One row as the API writes it: an amount that is a JSON number as a bare number
    (12.50, not "12.50"), any other text as a string, an empty cell as null, and every
    third empty customer id left out of the record altogether."""
    date, product, amount, customer = row
    fields = {"date": json.dumps(date or None), "product_id": json.dumps(product or None),
              "amount": amount if _JSON_NUMBER.fullmatch(amount) else json.dumps(amount or None)}
    if customer or number % 3:
        fields["customer_id"] = json.dumps(customer or None)
    return "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"


class SalesApi:
    """A sales API on 127.0.0.1, serving ROWS as pages of `page_size` records at
    `/sales?page=N` (with the page count unless `count_pages` is false; `next` links
    always). With `auth`, it answers 401 to a request without the bearer TOKEN or the
    Basic USER:PASSWORD. `/no-amount` serves records without `amount`, `/not-json` a
    web page, `/broken` a first page then 500, `/moved` redirects to `moved_to`,
    `/renamed` calls `amount` `total` and `product_id` `sku`; every other path is 404."""

    def __init__(self, page_size: int = 25, count_pages: bool = True, auth: bool = False,
                 moved_to: str | None = None) -> None:
        records = [_record(row, number) for number, row in enumerate(ROWS)]
        self.pages = [records[i:i + page_size] for i in range(0, len(records), page_size)]
        self.count_pages, self.auth, self.moved_to = count_pages, auth, moved_to
        self.requests: list[tuple[str, str | None]] = []  # (path and query, Authorization)
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                api.requests.append((self.path, self.headers.get("Authorization")))
                status, kind, body = api.answer(self.path, self.headers.get("Authorization"))
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", api.moved_to + "?" + urlsplit(self.path).query)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/sales", credentials: str = "") -> str:
        return f"http://{credentials}127.0.0.1:{self.port}{path}"

    def answer(self, target: str, authorization: str | None) -> tuple[int, str, bytes]:
        parts = urlsplit(target)
        page = int(parse_qs(parts.query).get("page", ["1"])[0])
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if parts.path == "/moved" and self.moved_to:
            return 307, "text/plain", b"moved"
        if self.auth and authorization not in (f"Bearer {TOKEN}", basic):
            return 401, "application/json", b'{"error": "unauthorized"}'
        if parts.path == "/not-json":
            return 200, "text/html", b"<html><body>Sales portal: please log in</body></html>"
        if parts.path == "/no-amount":
            return 200, "application/json", b'{"records": [{"date": "2024-03-01", "product_id": "P1"}], "next": null}'
        if parts.path == "/broken" and page > 1:
            return 500, "application/json", b'{"error": "database unavailable"}'
        if parts.path not in ("/sales", "/broken", "/renamed") or not 1 <= page <= len(self.pages):
            return 404, "application/json", b'{"error": "not found"}'
        last = page == len(self.pages)
        body = ('{"records": [' + ", ".join(self.pages[page - 1]) + "], "
                + f'"next": {"null" if last else json.dumps(f"{parts.path}?page={page + 1}")}'
                + (f', "pages": {len(self.pages)}' if self.count_pages else "") + "}")
        if parts.path == "/renamed":  # the API's own field names
            body = body.replace('"amount": ', '"total": ').replace('"product_id": ', '"sku": ')
        return 200, "application/json", body.encode()

    def pages_read(self) -> list[int]:
        return sorted(int(parse_qs(urlsplit(path).query)["page"][0]) for path, _ in self.requests)

    def __enter__(self) -> SalesApi:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    with SalesApi() as server:
        yield server


@pytest.fixture(scope="module")
def csv_outputs(tmp_path_factory) -> Path:
    """The outputs of a local run of the same rows written as a CSV file."""
    folder = tmp_path_factory.mktemp("csv")
    data = write_csv(folder / "sales.csv", ROWS)
    done = run_cli("run", str(data), "--output", str(folder / "out"), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    return folder / "out"


def _published(output: Path) -> dict[str, bytes]:
    """The published files but the quarantine, whose `file` column names the input."""
    return {name: (output / name).read_bytes() for name in PUBLISHED_FILES if name != "rejected_rows.parquet"}


def _quarantine(output: Path, header_lines: int = 0) -> list[dict]:
    """The quarantined rows without their input's name, each with its record number: a
    CSV file's line less its `header_lines`; an API's record position, from 1."""
    rows = pq.read_table(output / "rejected_rows.parquet").drop_columns(["file"]).to_pylist()
    return [{**row, "line": row["line"] - header_lines} for row in rows]


def _one_error_line(done) -> str:
    """The command's error: one `error:` line, the last on stderr (after the run's log
    lines, when it got as far as starting), and no traceback."""
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:], done.stderr
    assert "Traceback" not in done.stderr
    return errors[0]


# --- (a) the same outputs as a CSV file, through the real command line ----------------

@pytest.mark.parametrize("mode, options", [
    ("pandas", []),
    pytest.param("distributed", ["--workers", "2", "--partition-size", "1KiB"], marks=pytest.mark.slow),
], ids=["pandas", "distributed"])
def test_the_api_gives_the_same_outputs_as_its_records_in_a_csv_file(tmp_path, api, csv_outputs, mode, options):
    done = run_cli("run", api.url(), "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"), "--mode", mode,
                   *options)
    assert done.returncode == 0, done.stderr
    assert _published(tmp_path / "out") == _published(csv_outputs)
    assert _quarantine(tmp_path / "out") == _quarantine(csv_outputs, header_lines=1)
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert report["mode"] == mode
    assert report["input"]["files"][0]["path"] == api.url()
    pages = list(range(1, len(api.pages) + 1))
    if mode == "distributed":  # 1 KiB partitions: one read task per page, on the workers
        assert report["input"]["partitions"] == len(api.pages)
    assert api.pages_read() == sorted([1, *pages])  # page 1 once more: the check before the run


def test_an_api_without_a_page_count_is_read_by_following_next(tmp_path, csv_outputs):
    with SalesApi(page_size=40, count_pages=False) as api:
        done = run_cli("run", api.url(), "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"),
                       "--mode", "pandas")
        assert done.returncode == 0, done.stderr
        assert _published(tmp_path / "out") == _published(csv_outputs)
        assert api.pages_read() == sorted([1, *range(1, len(api.pages) + 1)])
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert report["input"]["partitions"] == 1


def test_fields_named_otherwise_are_mapped_as_for_a_csv_header(tmp_path, api, csv_outputs):
    done = run_cli("run", api.url("/renamed"), "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"),
                   "--mode", "pandas", "--columns", "amount=total,product_id=sku")
    assert done.returncode == 0, done.stderr
    assert _published(tmp_path / "out") == _published(csv_outputs)
    done = run_cli("run", api.url("/renamed"), "--plugin", str(PLUGIN), "--output", str(tmp_path / "unmapped"))
    assert done.returncode == 3
    assert "the records have no field 'product_id', 'amount'" in _one_error_line(done)


@pytest.fixture
def loaded_here(monkeypatch):
    """The example loaded in this process as the engine loads it, and forgotten after the
    test (the registry, the loaded names, the module): other tests see no http source."""
    import cloudpickle

    from engine.storage import plugins

    monkeypatch.setattr(plugins, "_SOURCES", dict(plugins._SOURCES))
    monkeypatch.setattr(plugins, "_loaded", set(plugins._loaded))
    name = f"sales_engine_plugin_{PLUGIN.stem}"
    previous = sys.modules.get(name)
    plugins.load_plugins([str(PLUGIN)])
    yield plugins
    module = sys.modules.pop(name, None)
    if module is not None and module is not previous:
        cloudpickle.unregister_pickle_by_value(module)
    if previous is not None:
        sys.modules[name] = previous


def test_amounts_are_read_as_the_digits_the_api_wrote(api, loaded_here):
    """A JSON number is text exactly as written: 10.00 stays `10.00` (a float would say
    10.0) and 999999999999.99 keeps its cents; null and a left-out field are null."""
    from engine.config import load_config

    config = load_config(environ={})
    source = loaded_here.source_for(api.url(), config)
    (dataset,) = source.resolve(api.url(), config)
    columns = ("date", "product_id", "amount", "customer_id")
    assert (dataset.path, dataset.format, dataset.compression, dataset.columns) == (api.url(), "table", None, columns)
    (task,) = source.tasks(dataset, 0, 1 << 30)  # one partition holds every page
    table = task.fetch()
    assert table.column_names == list(columns) and table.num_rows == len(ROWS)
    amounts = table["amount"].to_pylist()
    assert amounts[:4] == ["10.00", "0.005", "12.345", ".5"]
    assert "999999999999.99" in amounts and "1e3" in amounts  # SPEC: exponents are invalid amounts
    customers = table["customer_id"].to_pylist()
    assert customers[2] is None and customers[9] is None  # null, and left out of the record


def test_a_read_task_pickles_with_its_code_and_shows_no_secret(api, loaded_here, monkeypatch):
    """A fresh interpreter that never imported the plug-in unpickles a read task and runs
    its fetch (what a Dask worker does); no repr shows the token or the password."""
    import pickle
    import subprocess

    from engine.config import load_config

    monkeypatch.setenv("SALES_API_TOKEN", TOKEN)
    url = api.url(credentials=f"{USER}:{PASSWORD}@")
    source = loaded_here.source_for(url, load_config(environ={}))
    (dataset,) = source.resolve(url, load_config(environ={}))
    tasks = source.tasks(dataset, 0, 1)  # one page per task
    assert len(tasks) == len(api.pages)
    for shown in (repr(source), repr(tasks[-1].fetch), repr(dataset)):
        assert PASSWORD not in shown and TOKEN not in shown
    code = "import pickle, sys; print(pickle.loads(sys.stdin.buffer.read()).fetch().num_rows)"
    done = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(tasks[-1]), capture_output=True,
                          timeout=120, cwd=tempfile.gettempdir())
    assert done.returncode == 0, done.stderr.decode()
    assert int(done.stdout) == len(api.pages[-1])


# --- (b) loading: a configuration file's `plugins:`, an installed entry point ---------

def test_the_plugin_named_in_a_configuration_file(tmp_path, api, csv_outputs):
    config = tmp_path / "engine.yaml"
    config.write_text(f"plugins:\n  - {PLUGIN}\nmode: pandas\n")
    done = run_cli("run", api.url(), "--config", str(config), "--output", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert _published(tmp_path / "out") == _published(csv_outputs)


def test_the_plugin_installed_as_an_entry_point(tmp_path, api, csv_outputs):
    """A package's `sales_engine.plugins` entry point is loaded with no option at all."""
    site = tmp_path / "site"
    info = site / "sales_api_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sales-api-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sales_engine.plugins]\nsales_api = http_json_source\n")
    path = os.pathsep.join([str(site), str(PLUGIN.parent), os.environ.get("PYTHONPATH", "")])
    done = run_cli("run", api.url(), "--output", str(tmp_path / "out"), "--mode", "pandas",
                   env={"PYTHONPATH": path})
    assert done.returncode == 0, done.stderr
    assert _published(tmp_path / "out") == _published(csv_outputs)


# --- credentials ------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["bearer token", "user:password in the URL"])
def test_credentials_are_sent_and_never_written(tmp_path, session_audit_log, how):
    with SalesApi(auth=True) as api:
        if how == "bearer token":
            url, env = api.url(), {"SALES_API_TOKEN": TOKEN}
        else:
            url, env = api.url(credentials=f"{USER}:{PASSWORD}@"), {}
        done = run_cli("run", url, "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"), "--mode", "pandas",
                       env=env)
        assert done.returncode == 0, done.stderr
        assert all(authorization for _, authorization in api.requests)
    secret = TOKEN if how == "bearer token" else PASSWORD
    assert secret not in done.stdout + done.stderr
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert report["input"]["files"][0]["path"] == api.url()  # the dataset: no credentials
    events = (tmp_path / "out" / "lineage" / "events.jsonl").read_text()
    assert secret not in events and secret not in (tmp_path / "out" / "pipeline.log").read_text()


def test_credentials_follow_a_redirect_only_to_the_same_origin(tmp_path):
    """A redirect to another host gets no Authorization header: that host sees the run
    unauthenticated (and here refuses it)."""
    with SalesApi(auth=True) as elsewhere, SalesApi(auth=True) as api:
        api.moved_to = elsewhere.url()
        done = run_cli("run", api.url("/moved"), "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"),
                       env={"SALES_API_TOKEN": TOKEN})
        assert done.returncode == 5, done.stderr
        assert "HTTP 401" in _one_error_line(done)
        assert [authorization for _, authorization in api.requests] == [f"Bearer {TOKEN}"]
        assert elsewhere.requests and all(authorization is None for _, authorization in elsewhere.requests)
    with SalesApi(auth=True) as api:  # a redirect inside the API keeps them
        api.moved_to = api.url()
        done = run_cli("run", api.url("/moved"), "--plugin", str(PLUGIN), "--output", str(tmp_path / "out2"),
                       "--mode", "pandas", env={"SALES_API_TOKEN": TOKEN})
        assert done.returncode == 0, done.stderr


def test_credentials_in_the_input_url_are_recorded_nowhere(tmp_path, session_audit_log, api):
    url = api.url(credentials=f"{USER}:{PASSWORD}@")
    done = run_cli("run", url, "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    written = [path.read_text(errors="replace") for path in (tmp_path / "out").rglob("*")
               if path.is_file() and path.suffix in (".json", ".jsonl", ".log", ".html", ".prom")]
    assert not [text for text in written if PASSWORD in text]
    assert PASSWORD not in session_audit_log.read_text()


def test_credentials_the_api_refuses_are_a_service_error(tmp_path):
    with SalesApi(auth=True) as api:
        done = run_cli("run", api.url(), "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"),
                       env={"SALES_API_TOKEN": "wrong"})
    assert done.returncode == 5
    line = _one_error_line(done)
    assert "HTTP 401" in line and "SALES_API_TOKEN" in line and "wrong" not in line


# --- (c) errors: exit codes, one line, the URL with its credentials masked --------------

def test_an_api_that_is_down_is_a_service_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/sales"  # nothing listens there
    done = run_cli("run", url, "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"))
    assert done.returncode == 5, done.stderr
    line = _one_error_line(done)
    assert url in line and "cannot be reached" in line
    assert not (tmp_path / "out" / "daily_sales_summary.csv").exists()


@pytest.mark.parametrize("path, message", [
    ("/nowhere", "HTTP 404"),
    ("/no-amount", "the records have no field 'amount' (they have: date, product_id)"),
    ("/not-json", "the answer is not JSON"),
])
def test_an_answer_that_is_not_sales_records_is_an_input_error(tmp_path, api, path, message):
    url = api.url(path, credentials=f"{USER}:{PASSWORD}@")
    done = run_cli("run", url, "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"))
    assert done.returncode == 3, done.stderr
    line = _one_error_line(done)
    assert message in line and api.url(path) in line and PASSWORD not in line


@pytest.mark.parametrize("mode, options", [
    ("pandas", []),
    pytest.param("distributed", ["--workers", "2", "--partition-size", "1KiB"], marks=pytest.mark.slow),
], ids=["pandas", "distributed"])
def test_a_page_that_fails_mid_run_fails_the_run_and_publishes_nothing(tmp_path, api, mode, options):
    """On a worker too: the plug-in's ServiceError reaches the run as itself (exit 5)."""
    done = run_cli("run", api.url("/broken"), "--plugin", str(PLUGIN), "--output", str(tmp_path / "out"),
                   "--mode", mode, *options)
    assert done.returncode == 5, done.stderr
    if mode == "pandas":
        assert "HTTP 500" in _one_error_line(done)
    else:  # the Dask workers log their own "Compute Failed" report (with the task's traceback) too
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "HTTP 500" in last and "ServiceError" not in last
    assert not (tmp_path / "out" / "daily_sales_summary.csv").exists()
    events = [json.loads(line) for line in (tmp_path / "out" / "lineage" / "events.jsonl").read_text().splitlines()]
    assert [event["eventType"] for event in events] == ["START", "FAIL"]


# --- (d) a plug-in that cannot be loaded -------------------------------------------------

def test_a_plugin_file_that_does_not_exist_is_a_usage_error(tmp_path, api):
    missing = tmp_path / "no_such_plugin.py"
    done = run_cli("run", api.url(), "--plugin", str(missing), "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    assert str(missing) in _one_error_line(done)


def test_a_plugin_that_raises_on_import_is_a_usage_error(tmp_path, api):
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("import json\nraise RuntimeError('the plug-in needs SALES_API_REGION')\n")
    done = run_cli("run", api.url(), "--plugin", str(broken), "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    line = _one_error_line(done)
    assert str(broken) in line and "SALES_API_REGION" in line


# --- (e) adding the plug-in touched no module of the engine ------------------------------

def _code_names(tree: ast.AST) -> set[str]:
    """Every identifier, imported module and string constant of a module's code; the
    docstrings (which may point at the example) are not code."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names.add(node.value)
    return names


def test_the_engine_knows_nothing_of_the_example_plugin():
    """No engine module imports, names or loads the example (nor anything of an HTTP
    source): it is found only through `--plugin`, `plugins:` or an entry point."""
    mentions = {}
    for module in sorted((ROOT / "engine").rglob("*.py")):
        found = {name for name in _code_names(ast.parse(module.read_text(encoding="utf-8")))
                 if "http_json" in name.lower() or "httpjson" in name.lower() or name == "examples.plugins"}
        if found:
            mentions[str(module.relative_to(ROOT))] = sorted(found)
    assert mentions == {}
    registry = (ROOT / "engine" / "storage" / "plugins.py").read_text(encoding="utf-8")
    built_in = ast.literal_eval(re.search(r"_BUILT_IN_SOURCES = (\{.*?\})", registry, re.S).group(1))
    assert not {"http", "https"} & set(built_in)


def test_without_the_plugin_an_http_url_is_no_input_the_engine_reads(tmp_path, api):
    done = run_cli("run", api.url(), "--output", str(tmp_path / "out"))
    assert done.returncode == 2  # a usage error: no source reads http:// URLs
    assert "no source reads http:// URLs" in done.stderr.strip().splitlines()[-1]
    assert api.requests == []


# --- lineage -------------------------------------------------------------------------

def test_the_input_dataset_is_named_from_the_url(spec, tmp_path, api):
    from openlineage_schemas import validate_event

    done = run_cli("run", api.url(credentials=f"{USER}:{PASSWORD}@"), "--plugin", str(PLUGIN),
                   "--output", str(tmp_path / "out"), "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (tmp_path / "out" / "lineage" / "events.jsonl").read_text().splitlines()]
    for event in events:
        validate_event(event)
    (dataset,) = events[-1]["inputs"]
    assert (dataset["namespace"], dataset["name"]) == (f"http://127.0.0.1:{api.port}", "sales")
    assert dataset["facets"]["dataSource"]["uri"] == f"http://127.0.0.1:{api.port}"
    assert [f["name"] for f in dataset["facets"]["schema"]["fields"]] == ["date", "product_id", "amount",
                                                                          "customer_id"]
    assert dataset["inputFacets"]["inputStatistics"]["rowCount"] == len(ROWS)
    assert PASSWORD not in json.dumps(events)


def test_the_plugin_module_is_importable_on_its_own():
    """The example imports cleanly in a fresh interpreter and registers both schemes."""
    import subprocess

    code = ("import runpy, engine.storage.plugins as p; runpy.run_path(%r); "
            "print(sorted(s for s in p._SOURCES if s.startswith('http')))" % str(PLUGIN))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['http', 'https']"
