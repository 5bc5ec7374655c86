"""An OpenLineage event as the JSON line the file transport writes, without its cost.

`openlineage.client.serde.Serde.to_json` turns the event's attrs classes into dicts with
`attr.asdict`, then walks the result again to drop nulls and turn enums, dates and UUIDs
into strings. For an event listing a year of daily input files (1 MB of JSON) that is
0.19 s, twice per run. `event_json` does both in one walk, with each class's field names
looked up once: the same text (a test compares them on every event kind) in 0.02 s.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from typing import Any

import attr

_FIELDS: dict[type, tuple[str, ...] | None] = {}
_SCALARS = (str, int, float, bool, type(None))


def event_json(event: Any) -> str:
    """The text `Serde.to_json(event)` gives."""
    return json.dumps(_plain(event), sort_keys=True, default=_unserializable)


def _plain(value: Any) -> Any:
    """`Serde.remove_nulls_and_enums(attr.asdict(value))`, in one walk: None values left
    out of objects and maps; None and empty maps left out of lists."""
    kind = value.__class__
    if kind in _SCALARS:
        return value
    names = _field_names(kind)
    if names is not None:
        return _without_nulls((name, _plain(getattr(value, name))) for name in names)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return _without_nulls((key, _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        items = (_plain(item) for item in value if item is not None)
        return [item for item in items if item is not None and not (isinstance(item, dict) and not item)]
    if kind.__name__ == "int64":  # a NumPy integer, as Serde converts it
        return int(value)
    return value


def _without_nulls(pairs) -> dict:
    return {key: item for key, item in pairs if item is not None}


def _field_names(kind: type) -> tuple[str, ...] | None:
    """The attrs fields of `kind`, in declaration order (asdict's), or None for a class
    that is not an attrs class."""
    try:
        return _FIELDS[kind]
    except KeyError:
        names = tuple(field.name for field in attr.fields(kind)) if attr.has(kind) else None
        _FIELDS[kind] = names
        return names


def _unserializable(value: Any) -> str:
    return f"<<non-serializable: {type(value).__qualname__}>>"
