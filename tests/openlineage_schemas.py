"""Validate OpenLineage events against the official OpenLineage JSON Schemas.

The schemas are not part of this repository: they are read from the OpenLineage
spec checkout at ``../shared/openlineage-spec`` next to the project root
(``2-0-2/OpenLineage.json`` and ``facets/<version>/<Name>.json``). Every schema
file is registered under its own ``$id`` (``https://openlineage.io/spec/...``),
so ``$ref``s between the event schema and the facet schemas resolve offline.

``validate_event`` checks a serialized run event (a dict, e.g. from
``openlineage.client.serde.Serde.to_dict``) in two steps:

1. the whole event against ``2-0-2/OpenLineage.json#/$defs/RunEvent``;
2. every facet (run, job, dataset, input and output facets) against the facet
   schema its own ``_schemaURL`` names.

All violations are collected and raised together as one ``AssertionError``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "openlineage-spec"
"""Where the official OpenLineage spec (JSON Schemas) is expected: outside the repo."""

SPEC_MISSING_MESSAGE = (
    f"OpenLineage JSON Schemas not found: expected the official OpenLineage spec "
    f"directory at {SPEC_DIR} (with 2-0-2/OpenLineage.json and "
    f"facets/<version>/<Name>.json), i.e. ../shared/openlineage-spec relative to "
    f"the project root. The schemas are deliberately not copied into this repository."
)

OFFICIAL_SPEC_PREFIX = "https://openlineage.io/spec/"
"""Schema URLs under this prefix must resolve in the registry; others are custom facets."""

RUN_EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

# (container key inside the event, facet keys inside each container item)
_DATASET_FACET_KEYS = {"inputs": ("facets", "inputFacets"), "outputs": ("facets", "outputFacets")}

EventPath = Sequence[str | int]
"""A location inside an event: keys and list indexes."""


def spec_available() -> bool:
    """True when the official OpenLineage spec directory is present at SPEC_DIR."""
    return (SPEC_DIR / "2-0-2" / "OpenLineage.json").is_file()


def require_spec() -> None:
    """Raise AssertionError(SPEC_MISSING_MESSAGE) when the spec directory is absent."""
    if not spec_available():
        raise AssertionError(SPEC_MISSING_MESSAGE)


@functools.cache
def registry() -> Registry:
    """A registry of every schema file under SPEC_DIR, keyed by its ``$id``."""
    require_spec()
    resources = []
    for path in sorted(SPEC_DIR.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        schema_id = contents.get("$id") if isinstance(contents, dict) else None
        if not schema_id:
            raise AssertionError(f"OpenLineage schema file without $id: {path}")
        resources.append((schema_id, DRAFT202012.create_resource(contents)))
    return Registry().with_resources(resources).crawl()


@functools.cache
def _validator(schema_url: str) -> Draft202012Validator:
    """A Draft 2020-12 validator (formats checked) for the schema at `schema_url`."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": schema_url}
    return Draft202012Validator(schema, registry=registry(), format_checker=FormatChecker())


def schema_is_known(schema_url: str) -> bool:
    """True when `schema_url` (including its ``#/$defs/...`` fragment) resolves in the registry."""
    try:
        registry().resolver().lookup(schema_url)
    except Unresolvable:
        return False
    return True


def validate_event(event: dict[str, Any]) -> None:
    """Validate a serialized OpenLineage RunEvent and each of its facets.

    Raises AssertionError listing every violation as ``<path in event>: <message>``;
    also raises AssertionError(SPEC_MISSING_MESSAGE) when the spec is absent.
    """
    require_spec()
    violations = list(_schema_violations(event, RUN_EVENT_SCHEMA_URL, ()))
    if isinstance(event, dict):
        for path, facet in iter_facets(event):
            violations.extend(facet_violations(facet, path))
    if violations:
        lines = "\n".join(f"  - {violation}" for violation in violations)
        raise AssertionError(
            f"OpenLineage event does not conform to the official schemas "
            f"({len(violations)} violation(s)):\n{lines}"
        )


def iter_facets(event: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Yield (path, facet) for every run, job, dataset, input and output facet in `event`."""
    for section in ("run", "job"):
        yield from _facets_of(event.get(section), (section,), "facets")
    for container, facet_keys in _DATASET_FACET_KEYS.items():
        datasets = event.get(container)
        if not isinstance(datasets, list):
            continue
        for index, dataset in enumerate(datasets):
            for facet_key in facet_keys:
                yield from _facets_of(dataset, (container, index), facet_key)


def _facets_of(owner: Any, path: tuple[str | int, ...], key: str):
    """Yield (path, facet) for each entry of ``owner[key]`` when it is a dict of facets."""
    if not isinstance(owner, dict) or not isinstance(owner.get(key), dict):
        return
    for name, facet in owner[key].items():
        yield (*path, key, name), facet


def facet_violations(facet: Any, path: EventPath = ()) -> list[str]:
    """Violations of one facet against the schema named by its ``_schemaURL``.

    Official schema URLs (under OFFICIAL_SPEC_PREFIX) must resolve in the
    registry; a custom facet (any other URL) only needs ``_producer`` and
    ``_schemaURL``.
    """
    where = format_path(path)
    if not isinstance(facet, dict):
        return [f"{where}: facet must be an object, got {type(facet).__name__}"]
    schema_url = facet.get("_schemaURL")
    if not isinstance(schema_url, str):
        return [f"{where}: facet has no string _schemaURL naming its schema"]
    if not schema_url.startswith(OFFICIAL_SPEC_PREFIX):
        return _custom_facet_violations(facet, where)
    if "#/$defs/" not in schema_url:
        return [f"{where}: _schemaURL {schema_url!r} has no '#/$defs/<Name>' fragment"]
    if not schema_is_known(schema_url):
        return [f"{where}: _schemaURL {schema_url!r} is not a known OpenLineage schema (not in {SPEC_DIR})"]
    return list(_schema_violations(facet, schema_url, tuple(path)))


def _custom_facet_violations(facet: dict[str, Any], where: str) -> list[str]:
    """A custom facet is only required to carry string ``_producer`` and ``_schemaURL``."""
    return [
        f"{where}: custom facet needs a string {key}"
        for key in ("_producer", "_schemaURL")
        if not isinstance(facet.get(key), str)
    ]


def _schema_violations(instance: Any, schema_url: str, base: tuple[str | int, ...]) -> Iterator[str]:
    """Yield ``<path>: <message>`` for each leaf error of `instance` against `schema_url`."""
    errors = _validator(schema_url).iter_errors(instance)
    leaves = (leaf for error in errors for leaf in _leaf_errors(error))
    for error in sorted(leaves, key=lambda e: [str(part) for part in e.absolute_path]):
        where = format_path((*base, *error.absolute_path))
        yield f"{where}: {error.message} [{schema_url.removeprefix(OFFICIAL_SPEC_PREFIX)}]"


def _leaf_errors(error: ValidationError) -> Iterator[ValidationError]:
    """The innermost errors under anyOf/oneOf (whose own message says little)."""
    if not error.context:
        yield error
        return
    for child in error.context:
        yield from _leaf_errors(child)


def format_path(path: EventPath) -> str:
    """A JSONPath-like rendering of a location in the event: ``$.inputs[0].facets.schema``."""
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text
