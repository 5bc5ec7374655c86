"""One logging setup for the engine: the console (stderr) and a log file, in a human
format or as JSON lines for log aggregation, with credentials masked in every line.

    setup_logging("INFO", Path("output/pipeline.log"), log_format="json")
    with bound_run_id(run_id):
        ...  # every line now carries the run id (JSON: "run_id")

The console format is `time level logger: message`, the level coloured when stderr is
a terminal (and `NO_COLOR` is not set). A live progress line on the terminal
(engine.progress) is cleared before a log line is written and drawn again after it.
Log lines never carry row data: customer ids (personal data) appear in no message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOG_FORMATS = ("text", "json")

#: user:password in URLs, bearer tokens, and api_key / token / password / secret values
_CREDENTIALS = (
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\g<keep>***:***@"),
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\g<keep>***"),
    (re.compile(r"(?P<keep>\b(?:api[_-]?key|apikey|token|password|passwd|secret)\b[\"']?\s*[:=]\s*[\"']?)[^\s,;\"'&]+",
                re.IGNORECASE), r"\g<keep>***"),
)


def mask_credentials(text: str) -> str:
    """`text` with every credential the patterns above recognise replaced by `***`."""
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


class CredentialMask(logging.Filter):
    """Masks credentials in log records before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_credentials(record.getMessage()), None
        return True


_current_run_id: str | None = None


@contextmanager
def bound_run_id(run_id: str) -> Iterator[None]:
    """Every log line written inside the block belongs to run `run_id` (JSON: `run_id`).

    A process global rather than a context variable: progress and cluster threads log
    for the run too, and the CLI runs one run at a time."""
    global _current_run_id
    previous, _current_run_id = _current_run_id, run_id
    try:
        yield
    finally:
        _current_run_id = previous


class _RunId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _current_run_id
        return True


FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


class TextFormatter(logging.Formatter):
    """The human format; level names in colour when `colour` is set."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__(FORMAT)
        self.colour = colour

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        code = _LEVEL_COLOURS.get(record.levelname) if self.colour else None
        if code:
            level = f"{record.levelname:<7}"
            text = text.replace(level, f"\033[{code}m{level}\033[0m", 1)
        return text

    def formatException(self, ei: Any) -> str:
        return mask_credentials(super().formatException(ei))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and
    run_id and exception when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "run_id", None):
            entry["run_id"] = record.run_id
        if record.exc_info:
            entry["exception"] = mask_credentials(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class ConsoleHandler(logging.StreamHandler):
    """Log lines on stderr that leave a live status line on the terminal intact."""

    #: the live line on screen (engine.progress sets and clears it); None: nothing drawn
    live_line: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        line = ConsoleHandler.live_line
        if line is None:
            super().emit(record)
            return
        with line.paused():
            super().emit(record)


_HANDLER_MARK = "_engine_handler"


def setup_logging(level: str = "INFO", log_file: Path | None = None, log_format: str = "text") -> None:
    """Log `engine` messages at `level` to stderr and, if given, to `log_file`, in
    `log_format` (`text` or `json`).

    Calling it again replaces the handlers it added before (one run after another in
    the same process logs to the right file).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    logger = logging.getLogger("engine")
    logger.setLevel(level.upper())
    root = logging.getLogger()
    for owner in (logger, root):
        for handler in [h for h in owner.handlers if getattr(h, _HANDLER_MARK, False)]:
            owner.removeHandler(handler)
            handler.close()
    console = ConsoleHandler()
    handlers: list[tuple[logging.Handler, bool]] = [(console, _colour_wanted(console.stream))]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append((logging.FileHandler(log_file, encoding="utf-8"), False))
    for handler, colour in handlers:
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(colour=colour))
        handler.addFilter(CredentialMask())
        handler.addFilter(_RunId())
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
        # Other libraries' warnings (and Python warnings) go through the same handlers, so
        # they are masked and, with `json`, every line on stderr is a JSON object.
        root.addHandler(handler)
    logger.propagate = False
    logging.captureWarnings(True)
    # Hamilton logs every failing node with a banner; the engine reports the error itself.
    logging.getLogger("hamilton").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.CRITICAL)


def _colour_wanted(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
