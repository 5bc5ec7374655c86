"""One logging setup for the engine: the console (stderr) and a log file, in a human
format or as JSON lines for log aggregation, with credentials masked in every line.

    setup_logging("INFO", Path("output/pipeline.log"), log_format="json")
    with bound_run_id(run_id):
        ...  # every line now carries the run id (JSON: "run_id")

The console format is `time level logger: message`, the level coloured when stderr is
a terminal (and `NO_COLOR` is not set). A live progress line on the terminal
(engine.observability.progress) is cleared before a log line is written and drawn again after it.
Log lines never carry row data: customer ids (personal data) appear in no message.
Other libraries' records go through the same handlers at the engine's level (Dask's
`distributed.*` INFO chatter only at DEBUG). A command that fails ends its log file with
its outcome line (`end_log_file_with`), as it ends stderr.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOG_FORMATS = ("text", "json")

#: a query parameter whose value is a credential: any name ending in token, secret,
#: password, signature, credentials or api_key (access_token, X-Amz-Signature, apiKey...),
#: and key, sig, pwd and auth alone or after a separator (key, sas_key, X-Auth)
_SECRET_PARAMETER = (r"(?:[\w.-]*(?:token|secret|passw(?:or)?d|signature|credentials?|api[_-]?key)"
                     r"|(?:[\w.-]*[_.-])?(?:key|sig|pwd|auth))")

#: user:password in URLs, bearer tokens, credential query parameters, and api_key /
#: token / password / secret values
_CREDENTIALS = (
    # everything up to the LAST @ before the host: a password may itself contain @
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s?#@:]+:[^/\s?#]*@"), r"\g<keep>***:***@"),
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\g<keep>***"),
    (re.compile(rf"(?P<keep>[?&;]{_SECRET_PARAMETER}=)[^&;#\s\"'<>]+", re.IGNORECASE), r"\g<keep>***"),
    (re.compile(r"(?P<keep>\b(?:api[_-]?key|apikey|token|password|passwd|secret)\b[\"']?\s*[:=]\s*[\"']?)[^\s,;\"'&]+",
                re.IGNORECASE), r"\g<keep>***"),
)


def mask_credentials(text: str) -> str:
    """`text` with every credential the patterns above recognise replaced by `***`."""
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


#: C0 and C1 control characters, DEL, and the Unicode line and paragraph separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """`text` with every control character written as an escape (a newline as `\\n`,
    ESC as `\\x1b`), so text taken from file names, product ids or error messages can
    neither forge a log line nor send a terminal escape sequence. `keep_newlines`: the
    text is several lines on purpose (a traceback, a table); only its newlines stay."""
    if keep_newlines:
        return "\n".join(_CONTROL.sub(_escaped, line) for line in text.split("\n"))
    return _CONTROL.sub(_escaped, text)


def console_text(text: str, keep_newlines: bool = True) -> str:
    """What the CLI prints for `text`: credentials masked, control characters escaped."""
    return escape_controls(mask_credentials(text), keep_newlines=keep_newlines)


class CredentialMask(logging.Filter):
    """Masks credentials in log records before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_credentials(record.getMessage()), None
        return True


_current_run_id: str | None = None
_last_run_id: str | None = None
_current_format: str | None = None


@contextmanager
def bound_run_id(run_id: str) -> Iterator[None]:
    """Every log line written inside the block belongs to run `run_id` (JSON: `run_id`).

    A process global rather than a context variable: progress and cluster threads log
    for the run too, and the CLI runs one run at a time."""
    global _current_run_id, _last_run_id
    previous, _current_run_id = _current_run_id, run_id
    _last_run_id = run_id
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
        record.message = escape_controls(record.message)
        record.name = escape_controls(record.name)
        text = super().formatMessage(record)
        code = _LEVEL_COLOURS.get(record.levelname) if self.colour else None
        if code:
            level = f"{record.levelname:<7}"
            text = text.replace(level, f"\033[{code}m{level}\033[0m", 1)
        return text

    def formatException(self, ei: Any) -> str:
        return escape_controls(mask_credentials(super().formatException(ei)), keep_newlines=True)

    def formatStack(self, stack_info: str) -> str:
        return escape_controls(mask_credentials(super().formatStack(stack_info)), keep_newlines=True)


#: characters json.dumps(ensure_ascii=False) leaves as they are that still break a line
#: (str.splitlines) or drive a terminal: DEL, C1 controls, U+2028 and U+2029
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def json_line(entry: dict[str, Any]) -> str:
    """`entry` as one JSON line in which no character can end the line or reach a terminal raw."""
    text = json.dumps(entry, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
        return json_line(entry)


class ConsoleHandler(logging.StreamHandler):
    """Log lines on stderr that leave a live status line on the terminal intact."""

    #: the live line on screen (engine.observability.progress sets and clears it); None: nothing drawn
    live_line: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        line = ConsoleHandler.live_line
        if line is None:
            super().emit(record)
            return
        with line.paused():
            super().emit(record)


class AppendOnlyFileHandler(logging.StreamHandler):
    """The log file: opened for appending without following a symbolic link, refused
    unless it is a regular file, and given the permission policy's mode through its
    descriptor (engine.files.append.open_for_append)."""

    def __init__(self, path: Path) -> None:
        from engine.files.append import open_for_append

        self.baseFilename = str(path)
        fd = open_for_append(path, what="the log file")
        super().__init__(open(fd, "a", encoding="utf-8", errors="backslashreplace"))

    def close(self) -> None:
        self.acquire()
        try:
            try:
                self.flush()
            finally:
                stream, self.stream = self.stream, None
                if stream is not None:
                    stream.close()
                super().close()
        finally:
            self.release()


_HANDLER_MARK = "_engine_handler"

#: libraries whose INFO records are chatter to an operator (a LocalCluster's scheduler and
#: nanny announcing every connection, "Lost all workers" at its normal end): their records
#: are shown from WARNING unless the engine logs at DEBUG
CHATTY_LIBRARIES = ("distributed", "bokeh", "tornado")

_log_file_handler: logging.Handler | None = None
_log_files_opened = 0


def setup_logging(level: str = "INFO", log_file: Path | None = None, log_format: str = "text") -> None:
    """Log `engine` messages at `level` to stderr and, if given, to `log_file`, in
    `log_format` (`text` or `json`). Other libraries' records go to the same places at
    the same level (CHATTY_LIBRARIES from WARNING unless `level` is DEBUG), whatever
    levels and handlers those libraries gave their loggers themselves.

    Calling it again replaces the handlers it added before (one run after another in
    the same process logs to the right file). A log file that cannot be created there
    (a file stands where its folder should be, or it is a folder) is a ConfigurationError
    naming it.
    """
    global _current_format, _log_file_handler, _log_files_opened
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    _current_format = log_format
    logger = logging.getLogger("engine")
    logger.setLevel(level.upper())
    root = logging.getLogger()
    for owner in (logger, root):
        for handler in [h for h in owner.handlers if getattr(h, _HANDLER_MARK, False)]:
            owner.removeHandler(handler)
            handler.close()
    _log_file_handler = None
    console = ConsoleHandler()
    handlers: list[tuple[logging.Handler, bool]] = [(console, _colour_wanted(console.stream))]
    if log_file is not None:
        _log_file_handler = _open_log_file(log_file)
        _log_files_opened += 1
        handlers.append((_log_file_handler, False))
    for handler, colour in handlers:
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(colour=colour))
        handler.addFilter(_LibraryLevel(logging.getLevelNamesMapping()[level.upper()]))
        handler.addFilter(CredentialMask())
        handler.addFilter(_RunId())
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
        # Other libraries' warnings (and Python warnings) go through the same handlers, so
        # they are masked and, with `json`, every line on stderr is a JSON object.
        root.addHandler(handler)
    logger.propagate = False
    _route_chatty_libraries_to_root()
    logging.captureWarnings(True)
    # Hamilton logs every failing node with a banner; the engine reports the error itself.
    logging.getLogger("hamilton").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.CRITICAL)


#: the errors of a log file path that cannot hold a file: a file where a folder should be,
#: a folder where the file should be (a folder that cannot be written is the caller's to
#: report: for a run, as an output folder that is read-only or not writable)
_UNUSABLE_PATH = {errno.ENOTDIR, errno.EEXIST, errno.ENOENT, errno.EISDIR}


def _open_log_file(log_file: Path) -> AppendOnlyFileHandler:
    from engine.errors import ConfigurationError
    from engine.files.permissions import make_dirs

    try:
        make_dirs(log_file.parent)
        return AppendOnlyFileHandler(log_file)
    except OSError as error:
        if error.errno not in _UNUSABLE_PATH:
            raise
        reason = error.strerror or str(error)
        if error.filename and Path(error.filename) != log_file:
            reason += f": {error.filename}"
        raise ConfigurationError(f"{log_file}: cannot write the log file ({reason})") from None


class _LibraryLevel(logging.Filter):
    """Lets through the engine's own records (its logger's level decides) and other
    libraries' records at the engine's level or above, from WARNING for CHATTY_LIBRARIES
    unless the engine logs at DEBUG."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.chatty_level = level if level <= logging.DEBUG else max(level, logging.WARNING)

    def filter(self, record: logging.LogRecord) -> bool:
        top = record.name.partition(".")[0]
        if top == "engine":
            return True
        return record.levelno >= (self.chatty_level if top in CHATTY_LIBRARIES else self.level)


def _route_chatty_libraries_to_root() -> None:
    """dask.distributed, when imported before logging was set up, gives its loggers (and
    tornado's and bokeh's) a stderr handler of its own and stops them propagating (dask
    config `logging:`): take those handlers away, so that their records reach the
    engine's handlers (the log file, the level, masking, JSON) instead."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.partition(".")[0] not in CHATTY_LIBRARIES or not isinstance(logger, logging.Logger):
            continue
        for handler in [h for h in logger.handlers if _writes_to_stderr(h)]:
            logger.removeHandler(handler)
        logger.propagate = True


def _writes_to_stderr(handler: logging.Handler) -> bool:
    return (type(handler) is logging.StreamHandler
            and getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__))


def _colour_wanted(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def current_format() -> str | None:
    """The log format `setup_logging` last set up in this process (None: not yet)."""
    return _current_format


def outcome_line(message: str, exit_code: int, log_format: str | None = None, level: str = "ERROR") -> str:
    """The last line a command prints on stderr (`error: ...`, `interrupted`): masked and
    escaped as one text line, or in the JSON log format one JSON object with the fields
    of a JSON log line (time, level, logger, message, run_id) and `exit_code`."""
    if (log_format or _current_format) == "json":
        entry: dict[str, Any] = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": "engine.cli",
            "message": mask_credentials(message),
        }
        if _current_run_id or _last_run_id:
            entry["run_id"] = _current_run_id or _last_run_id
        entry["exit_code"] = exit_code
        return json_line(entry)
    return escape_controls(mask_credentials(message))


def log_files_opened() -> int:
    """How many log files `setup_logging` has opened in this process so far: a command
    that notes it when it starts knows afterwards whether the log file in use is its own."""
    return _log_files_opened


def end_log_file_with(line: str) -> None:
    """Append a command's outcome line (as printed on stderr, by `outcome_line`) to the
    log file `setup_logging` opened, so the file says how the run ended; nothing when no
    log file is open."""
    handler = _log_file_handler
    if handler is None:
        return
    handler.acquire()
    try:
        if handler.stream is not None:
            handler.stream.write(line + "\n")
            handler.stream.flush()
    except (OSError, ValueError):  # a log file that cannot take the line must not hide the outcome
        pass
    finally:
        handler.release()


def settle_output(timeout: float = 60.0, whole_tree: bool = False) -> None:
    """Before a command prints its outcome line: wait (at most `timeout` seconds) for the
    child processes it started (a LocalCluster's workers) to exit, so none of their log
    lines can come after it, and flush every log handler. With `whole_tree` (the process
    is the `engine` command, so every descendant is the run's), every descendant process
    is waited for, however it was started, and one still running at the deadline is
    stopped: the run is over, and its output must end with the outcome line."""
    import multiprocessing

    deadline = time.monotonic() + timeout
    for child in multiprocessing.active_children():
        child.join(max(0.0, deadline - time.monotonic()))
    if whole_tree:
        _end_descendants(deadline)
    for handler in [*logging.getLogger().handlers, *logging.getLogger("engine").handlers]:
        try:
            handler.flush()
        except Exception:  # a closed stream has nothing left to write
            pass


def _end_descendants(deadline: float) -> None:
    import psutil

    descendants = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(descendants, timeout=max(0.0, deadline - time.monotonic()))
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(alive, timeout=5)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def silence_after_outcome(close_stderr: bool = False) -> None:
    """After the outcome line: nothing this process logs any more (interpreter shutdown,
    atexit hooks of libraries) can be printed after it. With `close_stderr` (the process
    is the `engine` command), standard error then goes to /dev/null, so neither can what
    a library prints directly (an exception ignored in a finalizer or a thread)."""
    logging.disable(logging.CRITICAL)
    if close_stderr:
        sys.stderr.flush()
        sink = os.open(os.devnull, os.O_WRONLY)
        os.dup2(sink, 2)
        os.close(sink)
