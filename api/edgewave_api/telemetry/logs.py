"""Log lines that say which rollout, wave, agent and trace they belong to.

`setup_logging` installs one root handler: human-readable text by default, or JSON lines
(`fmt="json"`, or `"auto"`: JSON unless the stream is a terminal). Either way a `ContextFilter`
stamps every record with `rollout`, `wave`, `agent` (from `scope`) and `trace_id`, `span_id`
(from the current span), so the fields are there for lines logged by any library.

kopf compatibility: kopf's per-object loggers attach `k8s_ref`; both formats render it (the
JSON one under `object`, as kopf's own `--log-format=json` does, the text one as a
`[namespace/name]` prefix). Whoever prefers kopf's own handlers (`kopf run --log-format=json`,
or `kopf.configure(...)`) calls `install_context_filter()` afterwards: kopf's JSON formatter
emits every extra record attribute, so the same five fields appear in its lines unchanged.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, Literal, TextIO, get_args

from edgewave_api.errors import PermanentError
from edgewave_api.telemetry import scope, tracing

LogFormat = Literal["text", "json", "auto"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
CONTEXT_FIELDS = ("rollout", "wave", "agent", "trace_id", "span_id")

# Attributes every LogRecord has, and kopf's own bookkeeping: not "extra" fields.
_RESERVED = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        "k8s_ref",
        "k8s_skip",
        "settings",
        *CONTEXT_FIELDS,
    }
)


class LoggingConfigError(PermanentError):
    """The logging options cannot work as given."""


class ContextFilter(logging.Filter):
    """Stamps records with the scope and trace ids of the code that logged them."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = scope.current()
        ids = tracing.current_ids()
        fields = {
            "rollout": current.rollout,
            "wave": current.wave,
            "agent": current.agent,
            "trace_id": ids[0] if ids else None,
            "span_id": ids[1] if ids else None,
        }
        for name, value in fields.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def _severity(levelno: int) -> str:
    # The same words kopf's JSON formatter writes, so one log query fits both.
    if levelno <= logging.DEBUG:
        return "debug"
    if levelno <= logging.INFO:
        return "info"
    if levelno <= logging.WARNING:
        return "warn"
    if levelno <= logging.ERROR:
        return "error"
    return "fatal"


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, severity, logger, message, context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "severity": _severity(record.levelno),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        ref = getattr(record, "k8s_ref", None)
        if ref is not None:
            line["object"] = ref
        for name, value in record.__dict__.items():
            if name not in _RESERVED and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: [ns/name] message (rollout=... wave=... agent=... trace=...)`."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and ref.get("name"):
            namespace = ref.get("namespace")
            message = f"[{namespace}/{ref['name']}] {message}" if namespace else message
        labels = [
            f"{label}={value}"
            for label, value in (
                ("rollout", getattr(record, "rollout", None)),
                ("wave", getattr(record, "wave", None)),
                ("agent", getattr(record, "agent", None)),
                ("trace", getattr(record, "trace_id", None)),
            )
            if value is not None
        ]
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {message}"
        if labels:
            line = f"{line} ({' '.join(labels)})"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class _EdgewaveHandler(logging.StreamHandler[TextIO]):
    """Marks the handler `setup_logging` owns, so a second call replaces it."""


def setup_logging(
    *,
    fmt: LogFormat = "text",
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to `stream` (default stderr) in `fmt`; returns the handler."""
    if fmt not in LOG_FORMATS:
        raise LoggingConfigError(f"unknown log format {fmt!r}: use one of {', '.join(LOG_FORMATS)}")
    resolved = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(resolved, int):
        raise LoggingConfigError(f"unknown log level {level!r}: use DEBUG, INFO or WARNING")
    output = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if output.isatty() else "json"
    handler = _EdgewaveHandler(output)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _EdgewaveHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(resolved)
    return handler


def install_context_filter(logger: logging.Logger | None = None) -> None:
    """Add the context fields to the records every handler of `logger` (default root) emits."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
