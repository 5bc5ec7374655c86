"""A source plug-in: sales records from an HTTP JSON API (the operations guide's
`api_sales_data`, as an engine source). It shows the plug-in interface of
engine.storage.plugins (docs/plugins.md) and touches no module of the engine.

    export SALES_API_TOKEN=...            # optional: sent as `Authorization: Bearer ...`
    engine run https://sales.example.com/api/v1/sales --plugin examples/plugins/http_json_source.py

Importing this module registers it for `http://` and `https://` INPUT URLs; name it with
`--plugin`, in the configuration's `plugins:` list, or install it as an entry point of
the group `sales_engine.plugins`.

The API contract (what the sales API must answer):

    GET <INPUT URL with page=N>            N = 1, 2, ...; Accept: application/json
    200 {"records": [{"date": "2024-03-01", "product_id": "P1", "amount": 12.5,
                      "customer_id": "C1"}, ...],
         "pages": 12,                       optional: how many pages there are
         "next": "<URL of the next page>"}  absolute or relative; null or absent on the last

- Each record is one sale, a JSON object. `date`, `product_id` and `amount` are required
  fields, `customer_id` optional (`--columns amount=total` reads another field name, as
  for a CSV header). A field's value is text, a number or null; a number is read as the
  digits the API wrote (`12.50` is the text `12.50`, never the float 12.5), exactly as
  the engine reads a CSV cell. A field absent from one record is null (a missing value
  the cleaning rules reject, counted like an empty CSV cell). Page 1 decides the columns:
  a field no record of page 1 has is not read (an API without `customer_id` is an input
  without that column). Other fields are ignored.
- Pagination: the `page` query parameter numbers pages from 1. When the first page says
  how many `pages` there are, the pages are read in parallel, a few consecutive pages per
  read task (about one partition's bytes); otherwise one read task follows `next` from
  page 1 to the end. Either way every record is read exactly once, provided the API
  serves the same records while the run reads them (a snapshot, or an `as_of` parameter
  in the INPUT URL).
- Credentials: a bearer token from the environment variable SALES_API_TOKEN, or
  `user:password@` in the URL (HTTP Basic). They are sent only to the INPUT URL's origin
  (not to a `next` link or a redirect that points elsewhere) and never appear in the
  dataset's name, the lineage or an error message. They travel inside the read tasks to
  the Dask workers (use TLS to a remote scheduler: `cluster.tls`).
- SALES_API_TIMEOUT: seconds to wait for a page (default 30). Transient failures (a
  refused connection, a timeout, 429, 502, 503, 504) are retried twice, 0.5 s then 1 s
  apart. http(s)_proxy and no_proxy are honoured.

What the engine makes of it: the dataset is named by the URL without credentials
(lineage: namespace `http://host:port`, name the path); its size, which `auto` and the
partition size go by, is page 1's size times the page count (page 1's size alone when the
API does not say); a rejected record's quarantine `line` is its position (from 1) in the
API's order.

Errors, as the engine reports them (one line, the URL with its credentials masked): the
API cannot be reached, answers 5xx, or refuses the credentials (401, 403) →
ServiceError, exit 5; the URL is not found (404) or answers something that is not the
contract above (not JSON, no `records`, no records at all, records lacking a required
field) → InputDataError, exit 3; a SALES_API_TIMEOUT that is not a number →
ConfigurationError, exit 2.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

import pyarrow as pa

from engine.config import EngineConfig
from engine.errors import ConfigurationError, InputDataError, ServiceError
from engine.observability.logs import mask_credentials
from engine.rules.validation import RAW_COLUMNS, REQUIRED_COLUMNS
from engine.sources.layout import layout_of
from engine.sources.plan import ReadTask, SourceFile
from engine.storage.plugins import register_source

log = logging.getLogger(__name__)


TOKEN_VARIABLE = "SALES_API_TOKEN"
TIMEOUT_VARIABLE = "SALES_API_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
PAGE_PARAMETER = "page"
#: retries after the first attempt, for the failures worth retrying
RETRIES = 2
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_PAUSE_S = 0.5
USER_AGENT = "sales-engine-http-json-source/1"


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but sends the credentials only to the INPUT URL's origin."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        request = super().redirect_request(req, fp, code, msg, headers, newurl)
        if request is not None and _origin(newurl) != _origin(req.full_url):
            request.remove_header("Authorization")
        return request


def shown(url: str) -> str:
    """`url` as it may be printed or recorded: no `user:password@`, and the values of
    credential-like query parameters (`token=`, `api_key=`, ...) masked."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return mask_credentials(urlunsplit((parts.scheme, host, parts.path, parts.query, "")))


def page_url(url: str, page: int) -> str:
    """`url` asking for page `page` (the `page` parameter set, any other kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != PAGE_PARAMETER]
    return urlunsplit(parts._replace(query=urlencode([*query, (PAGE_PARAMETER, str(page))]), fragment=""))


@dataclass(frozen=True)
class ApiClient:
    """How to ask the sales API for a page: where credentials may go, the Authorization
    header (a secret: not in the repr), and the timeout. Picklable: it travels to the
    Dask workers inside each read task."""

    #: scheme://host:port of the INPUT URL: the only place the credentials are sent
    origin: str
    authorization: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def for_url(cls, url: str) -> ApiClient:
        """The client for INPUT `url`: its credentials from the URL or SALES_API_TOKEN."""
        parts = urlsplit(url)
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        elif os.environ.get(TOKEN_VARIABLE):
            authorization = "Bearer " + os.environ[TOKEN_VARIABLE].strip()
        text = os.environ.get(TIMEOUT_VARIABLE, "")
        try:
            timeout = float(text) if text else DEFAULT_TIMEOUT_S
        except ValueError:
            timeout = -1
        if not timeout > 0:
            raise ConfigurationError(f"{TIMEOUT_VARIABLE}={text!r}: not a number of seconds above 0")
        return cls(_origin(url), authorization, timeout)

    def page(self, url: str) -> tuple[dict[str, Any], int]:
        """The page document at `url` (checked against the contract) and its size in bytes."""
        body = self._get(url)
        try:
            document, problem = json.loads(body, parse_float=str, parse_int=str, parse_constant=str), None
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            document, problem = None, _first_line(error)
        if problem is not None:  # raised here, outside the `except`: see _get
            raise InputDataError(f"{shown(url)}: the answer is not JSON ({problem})")
        if not isinstance(document, dict) or not isinstance(document.get("records"), list):
            raise InputDataError(f'{shown(url)}: the answer is not a page of sales records '
                                 f'(a JSON object with a "records" list)')
        return document, len(body)

    def _get(self, url: str) -> bytes:
        """The body at `url`. A failure is raised outside the `except` that caught it: an
        error raised on a Dask worker is pickled with its context (tblib), and an HTTP
        response in the context cannot be, which would turn the error into a bare
        Exception (exit 1 instead of 3 or 5)."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.authorization and _origin(url) == self.origin:
            headers["Authorization"] = self.authorization
        parts = urlsplit(url)  # urllib sends no userinfo: it is in the header above
        request = urllib.request.Request(urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])),
                                         headers=headers)
        opener = urllib.request.build_opener(_SameOriginRedirects)  # and the proxies of http(s)_proxy
        for attempt in range(RETRIES + 1):
            try:
                with opener.open(request, timeout=self.timeout_s) as response:
                    return response.read()
            except urllib.error.HTTPError as error:
                error.close()
                failure, transient = _status_error(url, error.code, error.reason), error.code in RETRY_STATUSES
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                reason = _first_line(getattr(error, "reason", None) or error)
                failure, transient = ServiceError(f"{shown(url)}: the sales API cannot be reached ({reason})"), True
            if attempt == RETRIES or not transient:
                raise failure
            time.sleep(RETRY_PAUSE_S * 2 ** attempt)
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class FetchPages:
    """One read task: the sales records of pages `first` to `last` (`last` None: from
    `first`, following `next` to the end), as an Arrow table of text columns by the
    engine's names. Runs where the task runs (a Dask worker); picklable."""

    client: ApiClient
    #: the INPUT URL (it may hold credentials: not in the repr)
    url: str = field(repr=False)
    #: (engine column, the API's field name) of each column read
    fields: tuple[tuple[str, str], ...]
    first: int = 1
    last: int | None = None

    def __call__(self) -> pa.Table:
        columns: dict[str, list[str | None]] = {name: [] for name, _ in self.fields}
        for where, document in self._pages():
            for number, record in enumerate(document["records"], start=1):
                if not isinstance(record, dict):
                    raise InputDataError(f"{shown(where)}: record {number} is not a JSON object")
                for name, own in self.fields:
                    columns[name].append(_text(record.get(own), where, number, own))
        return pa.table({name: pa.array(values, type=pa.string()) for name, values in columns.items()})

    def _pages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.last is not None:
            for page in range(self.first, self.last + 1):
                where = page_url(self.url, page)
                yield where, self.client.page(where)[0]
            return
        where, seen = page_url(self.url, self.first), set()
        while where:
            if where in seen:
                raise InputDataError(f"{shown(where)}: the pages' `next` links go round in a circle")
            seen.add(where)
            document = self.client.page(where)[0]
            yield where, document
            where = _next_of(document, where)


@dataclass(frozen=True)
class Listing:
    """What page 1 told about the API: how to ask it, how many pages it has (None: it
    does not say), page 1's size, and the (engine column, field name) pairs to read."""

    client: ApiClient
    pages: int | None
    page_bytes: int
    fields: tuple[tuple[str, str], ...]


@dataclass
class HttpJsonSource:
    """The engine's Source (engine.storage.plugins) for a sales API at an http(s) URL:
    one dataset, read in pages. `resolve` asks page 1; `tasks` cuts the pages into read
    tasks."""

    #: the INPUT URL (it may hold credentials: not in the repr)
    url: str = field(repr=False)
    listing: Listing | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"HttpJsonSource({shown(self.url)!r})"

    def resolve(self, url: str, config: EngineConfig) -> tuple[SourceFile, ...]:
        """Ask for page 1: the API answers, speaks the contract, and its records have the
        required fields. The dataset is named by the URL without credentials; its size
        is estimated from page 1 (times the page count when the API gives one)."""
        client = ApiClient.for_url(url)
        first = page_url(url, 1)
        document, page_bytes = client.page(first)
        records = document["records"]
        pages = _page_count(document, first)
        if not records:
            raise InputDataError(f"{shown(url)}: the API has no sales records (page 1 is empty)")
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise InputDataError(f"{shown(first)}: record {number} is not a JSON object")
        own = tuple(dict.fromkeys(key for record in records for key in record))  # in order of appearance
        layout = layout_of(config)  # --columns amount=total reads the field `total`
        columns = layout.standard_names(own)
        missing = [dict(layout.columns).get(name, name) for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise InputDataError(f"{shown(url)}: the records have no field {', '.join(map(repr, missing))} "
                                 f"(they have: {', '.join(own)})")
        fields = tuple((name, field_name) for name, field_name in zip(columns, own) if name in RAW_COLUMNS)
        self.url, self.listing = url, Listing(client, pages, page_bytes, fields)
        if pages is None:
            log.info("%s: the API gives no page count; one read task follows its `next` links", shown(url))
        return (SourceFile(path=shown(url), format="table", compression=None, size=page_bytes * (pages or 1),
                           columns=columns, header=own if columns != own else (), reader=self),)

    def tasks(self, dataset: SourceFile, index: int, partition_bytes: int) -> list[ReadTask]:
        """Read tasks covering every page once: runs of consecutive pages of about
        `partition_bytes` when the page count is known, else one that follows `next`."""
        if self.listing is None:
            raise RuntimeError("HttpJsonSource.tasks before resolve")
        client, pages, page_bytes, fields = (self.listing.client, self.listing.pages, self.listing.page_bytes,
                                             self.listing.fields)
        if pages is None:
            return [ReadTask(file=dataset, fetch=FetchPages(client, self.url, fields))]
        step = max(1, partition_bytes // max(page_bytes, 1))
        return [ReadTask(file=dataset, fetch=FetchPages(client, self.url, fields, first, min(first + step - 1, pages)))
                for first in range(1, pages + 1, step)]


def _text(value: Any, where: str, number: int, name: str) -> str | None:
    """A field's value as the text a CSV cell would hold: numbers as written (the JSON
    parser keeps their digits), true/false as such, null as null."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    raise InputDataError(f"{shown(where)}: record {number}: field {name!r} is a JSON "
                         f"{'object' if isinstance(value, dict) else 'list'}, not text, a number or null")


def _page_count(document: dict[str, Any], where: str) -> int | None:
    count = document.get("pages")
    if count is None:
        return None
    if not (isinstance(count, str) and count.isdigit() and int(count) >= 1):  # numbers arrive as text
        raise InputDataError(f'{shown(where)}: "pages" is {count!r}, not a whole number of pages from 1')
    return int(count)


def _next_of(document: dict[str, Any], where: str) -> str | None:
    link = document.get("next")
    if link is None or link == "":
        return None
    if not isinstance(link, str):
        raise InputDataError(f'{shown(where)}: "next" is not a URL')
    target = urljoin(where, link)
    if urlsplit(target).scheme not in ("http", "https"):
        raise InputDataError(f'{shown(where)}: "next" is not an http(s) URL: {shown(target)}')
    return target


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _status_error(url: str, status: int, reason: Any) -> Exception:
    what = f"{shown(url)}: the sales API answered HTTP {status} {reason or ''}".rstrip()
    if status in (401, 403):
        return ServiceError(f"{what} (check the credentials: {TOKEN_VARIABLE} or user:password in the URL)")
    if status >= 500 or status in RETRY_STATUSES:
        return ServiceError(what)
    return InputDataError(what)


def _first_line(error: Any) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


register_source("http", HttpJsonSource)
register_source("https", HttpJsonSource)
