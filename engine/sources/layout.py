"""How input files lay out their columns when they differ from SPEC's CSV.

SPEC's files are comma-separated with a header naming `date`, `product_id`, `amount` and
optionally `customer_id`. Exports from other systems use another delimiter (`;`, a tab)
or other header names (`Date`, `Total`): `InputLayout` says which delimiter separates
fields and which header name holds each of the engine's columns (`--delimiter`,
`--columns date=Date,amount=Total`; `input_layout:` in the configuration). Inside the
engine the columns then carry their standard names; lineage lists the file's own names,
records the mapping, and derives every output column from the header column that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import EngineConfig
from engine.errors import ConfigurationError
from engine.rules.validation import RAW_COLUMNS

#: Names the configuration accepts for a delimiter that is awkward to type.
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True)
class InputLayout:
    """The field delimiter, and the header name of each mapped standard column."""

    delimiter: str = ","
    #: (standard column, header name in the files), for the columns named otherwise
    columns: tuple[tuple[str, str], ...] = ()

    def standard_names(self, header: tuple[str, ...]) -> tuple[str, ...]:
        """The header's names as the engine calls them: a mapped header name becomes its
        standard column; an unmapped column that bears the name of a mapped standard
        column is set aside (renamed, so never read), as the mapping says where that
        column's data is."""
        standard = {own: name for name, own in self.columns}
        mapped = set(standard.values())
        return tuple(standard.get(name) or (f"{name} (not used: mapped)" if name in mapped else name)
                     for name in header)

    def settings(self) -> dict:
        """What changes the figures read from a file (part of an incremental state's keys)."""
        return {"delimiter": self.delimiter, "columns": sorted(self.columns)}


def layout_of(config: EngineConfig) -> InputLayout:
    """The input layout `config` describes (`input_layout:`, `--delimiter`, `--columns`)."""
    return input_layout(config.input_layout.delimiter, config.input_layout.columns)


def input_layout(delimiter: str | None, columns: str | dict | None, origin: str = "input_layout") -> InputLayout:
    """The layout of `delimiter` (one character, or tab/semicolon/pipe/comma) and
    `columns` (`date=Date,amount=Total`, or a mapping); ConfigurationError naming
    `origin` when either is not usable."""
    return InputLayout(_delimiter(delimiter, origin), _columns(columns, origin))


def _delimiter(value: str | None, origin: str) -> str:
    if value is None or value == "":
        return ","
    delimiter = DELIMITER_NAMES.get(value.lower(), value)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise ConfigurationError(f"{origin}: delimiter {value!r} is not one character other than a quote or a "
                                 f"line break (or one of {', '.join(sorted(DELIMITER_NAMES))})")
    return delimiter


def _columns(value: str | dict | None, origin: str) -> tuple[tuple[str, str], ...]:
    if not value:
        return ()
    if isinstance(value, str):
        pairs = []
        for item in value.split(","):
            name, sep, own = item.partition("=")
            if not sep:
                raise ConfigurationError(f"{origin}: columns {value!r}: {item!r} is not COLUMN=HEADER "
                                         "(e.g. date=Date,amount=Total)")
            pairs.append((name.strip(), own.strip()))
    elif isinstance(value, dict):
        pairs = [(str(name).strip(), str(own).strip()) for name, own in value.items()]
    else:
        raise ConfigurationError(f"{origin}: columns must be COLUMN=HEADER pairs, not {type(value).__name__}")
    names = [name for name, _ in pairs]
    for name, own in pairs:
        if name not in RAW_COLUMNS:
            raise ConfigurationError(f"{origin}: columns: {name!r} is not one of the engine's columns "
                                     f"({', '.join(RAW_COLUMNS)})")
        if not own:
            raise ConfigurationError(f"{origin}: columns: {name}= names no header column")
        if names.count(name) > 1:
            raise ConfigurationError(f"{origin}: columns: {name!r} is mapped twice")
    owns = [own for _, own in pairs]
    repeated = [own for own in owns if owns.count(own) > 1]
    if repeated:
        raise ConfigurationError(f"{origin}: columns: header column {repeated[0]!r} is mapped twice")
    return tuple(sorted(pairs))
