"""One inference request cannot stall the agent: real agent processes, real gRPC.

A 15-million-element request is answered while the operator's Describe on the control port
keeps answering quickly (relative to the big request, not to a wall-clock bound) and the
agent's peak RSS grows by no more than the cap `settings.InferenceConfig` states. Bad
shapes, oversized messages and too many concurrent calls are refused with their statuses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest

from edgewave_agent import testing
from edgewave_agent.settings import InferenceConfig
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient, ClientTls
from edgewave_proto.agent.v1 import agent_pb2, agent_pb2_grpc
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2 as kserve

pytestmark = pytest.mark.integration

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
ELEMENTS = 15_000_000
WIDTH = 8  # the linear model's input is [batch, 8]
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 1 << 30),
    ("grpc.max_receive_message_length", 1 << 30),
]


def _deploy(agent: testing.AgentProcess, connect: Callable[..., AgentClient], tmp: Path) -> None:
    path, digest = testing.write_artifact(tmp, testing.linear_model(scale=2.0, size=WIDTH))

    async def deploy() -> None:
        async with connect(agent) as client:
            await client.push(Artifact.from_file(path))
            await client.activate(
                model="lin", version="7", digest=digest, backend="onnxruntime", rollout="r1"
            )

    asyncio.run(deploy())


@contextmanager
def _channels(
    agent: testing.AgentProcess, pki: testing.Pki
) -> Iterator[tuple[grpc.Channel, grpc.Channel]]:
    """(control channel with the operator's certificate, serving channel without one)."""
    control = grpc.secure_channel(
        agent.control,
        grpc.ssl_channel_credentials(pki.ca.cert_pem, pki.operator.key_pem, pki.operator.cert_pem),
        options=CHANNEL_OPTIONS,
    )
    serving = grpc.secure_channel(
        agent.serving, grpc.ssl_channel_credentials(pki.ca.cert_pem), options=CHANNEL_OPTIONS
    )
    with control, serving:
        yield control, serving


def _infer(channel: grpc.Channel) -> Callable[..., bytes]:
    # Bytes in, bytes out.
    call: Callable[..., bytes] = channel.unary_unary(
        MODEL_INFER, request_serializer=None, response_deserializer=None
    )
    return call


def _request(shape: list[int], raw: bytes | None = None, *, typed: bool = False) -> bytes:
    request = kserve.ModelInferRequest(model_name="lin")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=shape)
    if typed:
        tensor.contents.fp32_contents.extend(np.frombuffer(raw or b"", np.float32))
    elif raw is not None:
        request.raw_input_contents.append(raw)
    return request.SerializeToString()


def _status_kb(pid: int) -> dict[str, int]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = (line.split(":", 1) for line in lines if line.startswith(("VmRSS", "VmHWM")))
    return {name: int(value.split()[0]) * 1024 for name, value in fields}


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
def test_a_big_request_neither_stalls_control_nor_exceeds_its_memory_cap(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    agent_pki: testing.Pki,
    tmp_path: Path,
    typed: bool,
) -> None:
    agent = start_agent()
    _deploy(agent, connect, tmp_path)
    assert agent.process is not None
    pid = agent.process.pid
    batch = np.arange(ELEMENTS, dtype=np.float32).reshape(-1, WIDTH) % 1000
    message = _request(list(batch.shape), batch.tobytes(), typed=typed)
    with _channels(agent, agent_pki) as (control, serving):
        describe = agent_pb2_grpc.AgentServiceStub(control).Describe
        infer = _infer(serving)
        # Warm both paths (connections, the model's first run) so they are not measured.
        describe(agent_pb2.DescribeRequest(), timeout=30)
        infer(_request([1, WIDTH], bytes(4 * WIDTH)), timeout=30)
        idle = [_timed(lambda: describe(agent_pb2.DescribeRequest(), timeout=30)) for _ in range(5)]
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS: peak from here
        before = _status_kb(pid)["VmRSS"]

        done = threading.Event()
        during: list[float] = []

        def keep_describing() -> None:
            for _ in range(10_000):  # bounded; ends with the big request
                if done.is_set():
                    return
                during.append(_timed(lambda: describe(agent_pb2.DescribeRequest(), timeout=60)))

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            describing = pool.submit(keep_describing)
            answer = kserve.ModelInferResponse.FromString(infer(message, timeout=300))
            big_seconds = time.perf_counter() - started
            done.set()
            describing.result(timeout=120)
        peak = _status_kb(pid)["VmHWM"]

    y = np.frombuffer(answer.raw_output_contents[0], np.float32).reshape(batch.shape)
    np.testing.assert_allclose(y[-2:], batch[-2:] * np.arange(1, WIDTH + 1) * 2.0 + 0.25)
    growth = peak - before
    cap = InferenceConfig.MEMORY_FACTOR * (len(message) + len(answer.raw_output_contents[0]))
    print(
        f"\n{'typed' if typed else 'raw'}: {len(message) >> 20} MiB request answered in"
        f" {big_seconds:.2f}s; {len(during)} Describe calls meanwhile, max"
        f" {max(during) * 1000:.1f} ms, median {statistics.median(during) * 1000:.1f} ms"
        f" (idle median {statistics.median(idle) * 1000:.1f} ms);"
        f" agent peak RSS +{growth >> 20} MiB (cap {cap >> 20} MiB,"
        f" {growth / len(message):.2f}x the request)"
    )
    # The control port kept answering while the big request was parsed, decoded, run and
    # encoded: Describe calls kept coming back, typically in a tiny part of the big
    # request's time, the slowest in under a third of it. The agent before this change
    # (one server, decoding on the event loop), measured with its message limit raised:
    # the slowest Describe took 48% of a raw request's time, 64% of a typed one's. Under a
    # third, not less, because a loaded machine (two cores shared by several test runs)
    # stalls any thread now and then (worst seen: 31%).
    assert len(during) >= 3
    assert statistics.median(during) < big_seconds / 20
    assert max(during) < big_seconds / 3
    assert growth <= cap


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def limited(
    module_agents: Callable[..., testing.AgentProcess],
    agent_pki: testing.Pki,
    tmp_path_factory: pytest.TempPathFactory,
) -> testing.AgentProcess:
    """An agent with small limits; version 7 of `lin` answers after a second."""
    agent = module_agents(
        "edge-limits",
        inference={
            "max_request_bytes": "1MiB",
            "max_elements": 1000,
            "max_concurrent_rpcs": 2,
            "threads": 1,
        },
        fault_injection={"slow_requests_for_versions": ["7"], "added_latency_seconds": 1.0},
    )
    _deploy(agent, lambda a: _client(a, agent_pki), tmp_path_factory.mktemp("limited"))
    return agent


def _client(agent: testing.AgentProcess, pki: testing.Pki) -> AgentClient:
    tls = ClientTls(
        ca_pem=pki.ca.cert_pem, cert_pem=pki.operator.cert_pem, key_pem=pki.operator.key_pem
    )
    return AgentClient(agent.control, tls=tls, signing_key_pem=pki.signing_key.private_pem)


@pytest.mark.parametrize(
    ("shape", "raw", "message"),
    [
        ([3, 6148914691236517206], bytes(8), r"input x: shape \[3, 6148914691236517206\] has"),
        ([2**40, 2**40], b"", r"input x: shape \[1099511627776, 1099511627776\] has more"),
        ([1001], bytes(4004), r"input x: shape \[1001\] has more than 1000 elements \(inference"),
        ([-1, WIDTH], b"", r"input x: negative dimension -1"),
        ([2, WIDTH], bytes(4), r"input x: 4 raw bytes for shape \[2, 8\] of FP32"),
    ],
)
def test_bad_shapes_are_invalid_arguments_naming_the_input(
    limited: testing.AgentProcess,
    agent_pki: testing.Pki,
    shape: list[int],
    raw: bytes,
    message: str,
) -> None:
    with _channels(limited, agent_pki) as (_, serving), pytest.raises(grpc.RpcError) as refused:
        _infer(serving)(_request(shape, raw), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.fullmatch(message + r"[^\n]*", refused.value.details() or "")


def test_a_message_over_max_request_bytes_is_refused(
    limited: testing.AgentProcess, agent_pki: testing.Pki
) -> None:
    with _channels(limited, agent_pki) as (_, serving), pytest.raises(grpc.RpcError) as refused:
        _infer(serving)(_request([300_000], bytes(1_200_000)), timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_concurrent_calls_over_the_limit_are_refused_and_control_still_answers(
    limited: testing.AgentProcess, agent_pki: testing.Pki
) -> None:
    request = _request([1, WIDTH], bytes(4 * WIDTH))
    with _channels(limited, agent_pki) as (control, serving):
        infer = _infer(serving)
        describe = agent_pb2_grpc.AgentServiceStub(control).Describe
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            calls = [pool.submit(_outcome, lambda: infer(request, timeout=30)) for _ in range(4)]
            time.sleep(0.2)  # let the calls reach the agent
            described = _timed(lambda: describe(agent_pb2.DescribeRequest(), timeout=30))
            outcomes = [call.result() for call in calls]
    codes = [code for code, _ in outcomes]
    answered = [seconds for code, seconds in outcomes if code == grpc.StatusCode.OK]
    assert answered, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 1, codes
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    # Answered calls take the injected second or more; Describe did not wait for them.
    assert described < min(answered) / 2


def test_the_control_port_does_not_serve_inference(
    limited: testing.AgentProcess, agent_pki: testing.Pki
) -> None:
    with _channels(limited, agent_pki) as (control, _), pytest.raises(grpc.RpcError) as refused:
        _infer(control)(_request([1, WIDTH], bytes(4 * WIDTH)), timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _outcome(call: Callable[[], object]) -> tuple[grpc.StatusCode, float]:
    started = time.perf_counter()
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), time.perf_counter() - started
    return grpc.StatusCode.OK, time.perf_counter() - started
