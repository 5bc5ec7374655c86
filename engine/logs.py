"""One logging setup for the CLI: human-readable lines on stderr and in a log file,
with credentials masked in every line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

#: user:password in URLs, bearer tokens, and api_key / token / password / secret values
_CREDENTIALS = (
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\g<keep>***:***@"),
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\g<keep>***"),
    (re.compile(r"(?P<keep>\b(?:api[_-]?key|apikey|token|password|passwd|secret)\b[\"']?\s*[:=]\s*[\"']?)[^\s,;\"'&]+",
                re.IGNORECASE), r"\g<keep>***"),
)


class CredentialMask(logging.Filter):
    """Masks credentials in log records before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for pattern, replacement in _CREDENTIALS:
            message = pattern.sub(replacement, message)
        record.msg, record.args = message, None
        return True

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_HANDLER_MARK = "_engine_handler"


def setup_logging(level: str = "INFO", log_file: Path | None = None) -> None:
    """Log `engine` messages at `level` to stderr and, if given, to `log_file`.

    Calling it again replaces the handlers it added before (one run after another in
    the same process logs to the right file).
    """
    logger = logging.getLogger("engine")
    logger.setLevel(level.upper())
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(CredentialMask())
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
    logger.propagate = False
    # Hamilton logs every failing node with a banner; the engine reports the error itself.
    logging.getLogger("hamilton").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.CRITICAL)
