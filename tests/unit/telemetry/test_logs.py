"""Log lines carry rollout, wave, agent and trace id, in our formats and in kopf's JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import kopf
import pytest
from opentelemetry.sdk.trace import TracerProvider

from edgewave_api.telemetry import logs, scope, spans, tracing

UID = "7d1e5c44-aaaa-4bbb-8ccc-dddddddddddd"
log = logging.getLogger("edgewave.test.logs")


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[logging.Logger]:
    """Restore the root and asyncio loggers that setup_logging and kopf.configure change."""
    root = logging.getLogger()
    asyncio_logger = logging.getLogger("asyncio")
    saved = (root.handlers[:], root.level, asyncio_logger.handlers[:], asyncio_logger.propagate)
    yield root
    root.handlers[:], asyncio_logger.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    asyncio_logger.propagate = saved[3]


@pytest.fixture(autouse=True)
def recording_provider() -> Iterator[None]:
    provider = TracerProvider()
    with tracing.use_provider(provider):
        yield
    provider.shutdown()


def _in_a_push() -> tuple[str, str]:
    """Log three lines inside a rollout's push span; return its (trace id, span id)."""
    with (
        spans.rollout(namespace="prod", name="detector", uid=UID, generation=2),
        spans.wave(name=1),
        spans.push(agent="edge-4", digest="sha256:aa", size=10) as push,
    ):
        log.info("pushing %d bytes", 10, extra={"chunk": 3})
        try:
            raise ConnectionResetError("stream broken")
        except ConnectionResetError:
            log.exception("push interrupted")
        kopf_ref = {"kind": "ModelRollout", "namespace": "prod", "name": "detector"}
        log.warning("from a kopf object logger", extra={"k8s_ref": kopf_ref, "k8s_skip": False})
        context = push.get_span_context()
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_json_lines_carry_the_context() -> None:
    out = io.StringIO()
    logs.setup_logging(fmt="json", stream=out)
    trace_id, span_id = _in_a_push()
    log.info("outside any rollout")

    pushing, interrupted, kopf_line, outside = (json.loads(x) for x in out.getvalue().splitlines())
    assert trace_id == tracing.rollout_trace_id(uid=UID, generation=2)
    context = {
        "rollout": "prod/detector",
        "wave": "1",
        "agent": "edge-4",
        "trace_id": trace_id,
        "span_id": span_id,
    }
    assert pushing.pop("timestamp").endswith("Z")
    assert pushing == {
        "severity": "info",
        "logger": "edgewave.test.logs",
        "message": "pushing 10 bytes",
        "chunk": 3,
        **context,
    }
    assert interrupted["severity"] == "error"
    assert "ConnectionResetError: stream broken" in interrupted["exception"]
    assert kopf_line["object"] == {"kind": "ModelRollout", "namespace": "prod", "name": "detector"}
    assert {key: kopf_line[key] for key in context} == context
    assert "k8s_skip" not in kopf_line
    assert not set(context) & set(outside)


def test_text_is_one_readable_line_with_the_context() -> None:
    out = io.StringIO()
    logs.setup_logging(fmt="text", stream=out)
    trace_id, _ = _in_a_push()
    pushing, *_rest, kopf_line = [
        line for line in out.getvalue().splitlines() if " edgewave.test.logs: " in line
    ]
    assert pushing.endswith(
        f"INFO    edgewave.test.logs: pushing 10 bytes "
        f"(rollout=prod/detector wave=1 agent=edge-4 trace={trace_id})"
    )
    assert "WARNING edgewave.test.logs: [prod/detector] from a kopf object logger" in kopf_line
    assert "Traceback" in out.getvalue()


def test_auto_is_json_when_not_a_terminal_and_setup_replaces_itself() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.setup_logging(fmt="text", stream=first)
    logs.setup_logging(fmt="auto", stream=second)
    log.warning("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "once"


def test_kopf_json_format_gets_the_context_fields(capsys: pytest.CaptureFixture[str]) -> None:
    kopf.configure(log_format=kopf.LogFormat.JSON)
    logs.install_context_filter()
    logs.install_context_filter()  # idempotent
    trace_id, span_id = _in_a_push()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    pushing = next(line for line in lines if line["message"] == "pushing 10 bytes")
    assert pushing["severity"] == "info"
    assert pushing["rollout"] == "prod/detector"
    assert pushing["wave"] == "1"
    assert pushing["agent"] == "edge-4"
    assert (pushing["trace_id"], pushing["span_id"]) == (trace_id, span_id)


def test_explicit_extra_fields_win_over_the_scope() -> None:
    out = io.StringIO()
    logs.setup_logging(fmt="json", stream=out)
    with scope.bind(agent="edge-1"):
        log.info("about another agent", extra={"agent": "edge-2"})
    assert json.loads(out.getvalue())["agent"] == "edge-2"


@pytest.mark.parametrize(
    ("fmt", "level", "message"),
    [
        ("xml", "INFO", "unknown log format 'xml': use one of text, json, auto"),
        ("json", "LOUD", "unknown log level 'LOUD'"),
    ],
)
def test_bad_logging_options_say_what_to_do(fmt: str, level: str, message: str) -> None:
    with pytest.raises(logs.LoggingConfigError, match=message):
        logs.setup_logging(fmt=fmt, level=level, stream=io.StringIO())  # type: ignore[arg-type]
