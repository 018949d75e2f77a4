"""Build planning: which backend serves each agent, where it is built, one build per key."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edgewave_api import edgeagent, modelrollout
from edgewave_compiler import keys, planning

SHA = "0f" * 32
RTX_VERSION = "1.7.1.116"
RTX = planning.CentralBuilder(
    backend=keys.Backend.TENSORRT_RTX,
    version=RTX_VERSION,
    compute_capabilities=frozenset({"7.5", "8.0", "8.6", "8.9", "12.0", "12.1"}),
)
ORT = planning.CentralBuilder(backend=keys.Backend.ONNXRUNTIME, version="1.32.0")
TRT_A100 = planning.CentralBuilder(
    backend=keys.Backend.TENSORRT,
    version="10.3.0",
    compute_capabilities=frozenset({"8.0"}),
    hardware_compatibility=True,
)
HERE = (RTX, ORT)
"""What this CPU-only operator offers: TensorRT-RTX ahead of time and ONNX Runtime."""
ALL = (keys.Backend.TENSORRT, keys.Backend.TENSORRT_RTX, keys.Backend.ONNXRUNTIME)
PROFILE = keys.ShapeProfile(input="x", min=(1, 8), opt=(4, 8), max=(16, 8))
B = keys.Backend
L = planning.BuildLocation


def platform(cc: str | None, **runtimes: str) -> planning.TargetPlatform:
    return planning.TargetPlatform(
        compute_capability=cc, runtimes={k.replace("_", "-"): v for k, v in runtimes.items()}
    )


def request(
    backends: tuple[keys.Backend, ...] = ALL, precision: keys.Precision = keys.Precision.FP16
) -> planning.BuildRequest:
    return planning.BuildRequest(
        model_sha256=SHA, backends=backends, precision=precision, profiles=(PROFILE,)
    )


@dataclass(frozen=True)
class Case:
    name: str
    platform: planning.TargetPlatform
    backend: keys.Backend
    location: planning.BuildLocation
    version: str
    cc: str | None
    precision: keys.Precision = keys.Precision.FP16
    request: planning.BuildRequest = field(default_factory=request)
    builders: tuple[planning.CentralBuilder, ...] = HERE
    options: planning.PlanOptions = field(default_factory=planning.PlanOptions)


CASES = [
    Case(
        "rtx ampere, same release: central",
        platform("8.6", tensorrt_rtx=RTX_VERSION, onnxruntime="1.32.0"),
        B.TENSORRT_RTX,
        L.CENTRAL,
        RTX_VERSION,
        "8.6",
    ),
    Case(
        "rtx blackwell spelled sm120",
        platform("sm120", TensorRTRTX=RTX_VERSION),
        B.TENSORRT_RTX,
        L.CENTRAL,
        RTX_VERSION,
        "12.0",
    ),
    Case(
        "rtx runtime of another release: the agent builds",
        platform("8.9", tensorrt_rtx="1.6.0.3"),
        B.TENSORRT_RTX,
        L.AGENT,
        "1.6.0.3",
        "8.9",
    ),
    Case(
        "jetson orin with tensorrt: no central builder, agent builds",
        platform("8.7", tensorrt="10.3.0", onnxruntime="1.32.0"),
        B.TENSORRT,
        L.AGENT,
        "10.3.0",
        "8.7",
    ),
    Case(
        "hopper with tensorrt: agent builds",
        platform("9.0", tensorrt="10.3.0"),
        B.TENSORRT,
        L.AGENT,
        "10.3.0",
        "9.0",
    ),
    Case(
        "cpu only: onnx runtime, FP16 served as FP32",
        platform(None, onnxruntime="1.32.1"),
        B.ONNXRUNTIME,
        L.CENTRAL,
        "1.32.0",
        None,
        keys.Precision.FP32,
    ),
    Case(
        "cpu only, older onnx runtime: the agent optimizes",
        platform(None, onnxruntime="1.20.1"),
        B.ONNXRUNTIME,
        L.AGENT,
        "1.20.1",
        None,
        keys.Precision.FP32,
    ),
    Case(
        "gpu without a gpu runtime: onnx runtime",
        platform("8.6", onnxruntime="1.32.0"),
        B.ONNXRUNTIME,
        L.CENTRAL,
        "1.32.0",
        None,
        keys.Precision.FP32,
    ),
    Case(
        "gpu runtime but no gpu reported: onnx runtime",
        platform(None, tensorrt_rtx=RTX_VERSION, onnxruntime="1.32.0"),
        B.ONNXRUNTIME,
        L.CENTRAL,
        "1.32.0",
        None,
        keys.Precision.FP32,
    ),
    Case(
        "bf16 on turing is skipped for the next backend",
        platform("7.5", tensorrt_rtx=RTX_VERSION, onnxruntime="1.32.0"),
        B.ONNXRUNTIME,
        L.CENTRAL,
        "1.32.0",
        None,
        keys.Precision.FP32,
        request(precision=keys.Precision.BF16),
    ),
    Case(
        "bf16 on ampere stays bf16",
        platform("8.6", tensorrt_rtx=RTX_VERSION),
        B.TENSORRT_RTX,
        L.CENTRAL,
        RTX_VERSION,
        "8.6",
        keys.Precision.BF16,
        request(precision=keys.Precision.BF16),
    ),
    Case(
        "preference order wins over build location",
        platform("8.6", tensorrt="10.3.0", tensorrt_rtx=RTX_VERSION),
        B.TENSORRT,
        L.AGENT,
        "10.3.0",
        "8.6",
    ),
    Case(
        "disallowed backend is never chosen",
        platform("8.6", tensorrt="10.3.0", tensorrt_rtx=RTX_VERSION),
        B.TENSORRT_RTX,
        L.CENTRAL,
        RTX_VERSION,
        "8.6",
        request=request((B.TENSORRT_RTX,)),
    ),
    Case(
        "tensorrt builder with the agent's gpu: central",
        platform("8.0", tensorrt="10.3.0"),
        B.TENSORRT,
        L.CENTRAL,
        "10.3.0",
        "8.0",
        builders=(TRT_A100, *HERE),
    ),
    Case(
        "tensorrt of another gpu class without hardware compatibility: agent",
        platform("8.6", tensorrt="10.3.0"),
        B.TENSORRT,
        L.AGENT,
        "10.3.0",
        "8.6",
        builders=(TRT_A100, *HERE),
    ),
    Case(
        "tensorrt hardware compatible: one ampere+ engine",
        platform("8.6", tensorrt="10.3.0"),
        B.TENSORRT,
        L.CENTRAL,
        "10.3.0",
        None,
        builders=(TRT_A100, *HERE),
        options=planning.PlanOptions(tensorrt_hardware_compatible=True),
    ),
    Case(
        "hardware compatibility never covers jetson",
        platform("8.7", tensorrt="10.3.0"),
        B.TENSORRT,
        L.AGENT,
        "10.3.0",
        "8.7",
        builders=(TRT_A100, *HERE),
        options=planning.PlanOptions(tensorrt_hardware_compatible=True),
    ),
    Case(
        "tensorrt version compatible serves a newer runtime",
        platform("8.0", tensorrt="10.5.1"),
        B.TENSORRT,
        L.CENTRAL,
        "10.3.0",
        "8.0",
        builders=(TRT_A100, *HERE),
        options=planning.PlanOptions(tensorrt_version_compatible=True),
    ),
    Case(
        "version compatibility never serves an older runtime",
        platform("8.0", tensorrt="10.2.0"),
        B.TENSORRT,
        L.AGENT,
        "10.2.0",
        "8.0",
        builders=(TRT_A100, *HERE),
        options=planning.PlanOptions(tensorrt_version_compatible=True),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_decide(case: Case) -> None:
    decision = planning.decide(
        platform=case.platform, request=case.request, builders=case.builders, options=case.options
    )
    assert isinstance(decision, planning.Decision), decision
    assert (decision.key.backend, decision.location) == (case.backend, case.location)
    assert decision.key.backend_version == case.version
    assert decision.key.compute_capability == case.cc
    assert decision.key.precision is case.precision
    assert decision.key.model_sha256 == SHA


def test_hardware_compatible_key_says_so() -> None:
    decision = planning.decide(
        platform=platform("8.9", tensorrt="10.3.0"),
        request=request(),
        builders=(TRT_A100,),
        options=planning.PlanOptions(tensorrt_hardware_compatible=True),
    )
    assert isinstance(decision, planning.Decision)
    assert decision.key.hardware_compatibility is keys.HardwareCompatibility.AMPERE_PLUS


def test_onnxruntime_keys_carry_no_profiles_or_workspace() -> None:
    decision = planning.decide(
        platform=platform(None, onnxruntime="1.32.0"), request=request(), builders=HERE
    )
    assert isinstance(decision, planning.Decision)
    assert decision.key.profiles == ()
    assert decision.key.workspace_bytes is None


@pytest.mark.parametrize(
    ("target", "options", "words"),
    [
        (platform("8.6", CUDA="12.9"), planning.PlanOptions(), ["no such runtime", "CUDA 12.9"]),
        (platform(None), planning.PlanOptions(), ["GPU none", "runtimes none"]),
        (
            platform("8.7", tensorrt="10.3.0"),
            planning.PlanOptions(allow_agent_builds=False),
            ["compute capability 8.7", "agent builds are disabled"],
        ),
        (
            platform(None, tensorrt_rtx=RTX_VERSION),
            planning.PlanOptions(),
            ["TensorRTRTX: the agent reports no GPU", "install that runtime"],
        ),
    ],
)
def test_refusals_say_why(
    target: planning.TargetPlatform, options: planning.PlanOptions, words: list[str]
) -> None:
    refusal = planning.decide(platform=target, request=request(), builders=HERE, options=options)
    assert isinstance(refusal, planning.Refusal)
    for word in words:
        assert word in refusal.reason


def fleet() -> dict[str, planning.TargetPlatform]:
    """12 agents: 3 per RTX class, 2 CPU-only, 1 Jetson pair, 1 without any runtime."""
    agents: dict[str, planning.TargetPlatform] = {}
    for cc in ("7.5", "8.6", "8.9"):
        for i in range(3):
            agents[f"rtx-{cc}-{i}"] = platform(cc, tensorrt_rtx=RTX_VERSION, onnxruntime="1.32.0")
    agents["cpu-0"] = platform(None, onnxruntime="1.32.0")
    agents["cpu-1"] = platform(None, onnxruntime="1.32.2")
    agents["jetson-0"] = platform("8.7", tensorrt="10.3.0")
    agents["jetson-1"] = platform("8.7", tensorrt="10.3.0")
    agents["bare"] = platform("8.6")
    return agents


def test_plan_dedupes_by_key() -> None:
    plan = planning.plan_builds(targets=fleet(), request=request(), builders=HERE)
    central = {(b.key.backend, b.key.compute_capability): b.agents for b in plan.central}
    assert central == {
        (B.TENSORRT_RTX, "7.5"): ("rtx-7.5-0", "rtx-7.5-1", "rtx-7.5-2"),
        (B.TENSORRT_RTX, "8.6"): ("rtx-8.6-0", "rtx-8.6-1", "rtx-8.6-2"),
        (B.TENSORRT_RTX, "8.9"): ("rtx-8.9-0", "rtx-8.9-1", "rtx-8.9-2"),
        (B.ONNXRUNTIME, None): ("cpu-0", "cpu-1"),
    }
    [jetson] = plan.on_agents
    assert jetson.agents == ("jetson-0", "jetson-1")
    assert jetson.key.compute_capability == "8.7"
    # Four central builds, and each Jetson builds its own copy.
    assert plan.build_count == 6
    assert len({b.digest for b in plan.builds}) == len(plan.builds)
    assert set(plan.unservable) == {"bare"}
    assert plan.key_for("rtx-8.6-1") == plan.key_for("rtx-8.6-0")
    assert plan.key_for("bare") is None
    assert plan.location_for("jetson-1") is L.AGENT
    assert plan.location_for("cpu-1") is L.CENTRAL


def test_plan_is_deterministic() -> None:
    targets = fleet()
    reordered = dict(reversed(list(targets.items())))
    first = planning.plan_builds(targets=targets, request=request(), builders=HERE)
    second = planning.plan_builds(targets=reordered, request=request(), builders=HERE)
    assert first == second


def test_thousand_agents_four_classes_five_builds() -> None:
    classes = ("7.5", "8.6", "8.9", "12.0")
    targets = {
        f"agent-{i:04d}": (
            platform(classes[i % 4], tensorrt_rtx=RTX_VERSION, onnxruntime="1.32.0")
            if i % 2
            else platform(classes[i % 4], onnxruntime="1.32.0")
        )
        for i in range(1000)
    }
    plan = planning.plan_builds(targets=targets, request=request(), builders=HERE)
    assert len(plan.assignments) == 1000
    # Odd agents cover classes 8.6 and 12.0 only (i % 4 in {1, 3}), even ones are ONNX Runtime.
    assert sorted((b.key.backend.value, b.key.compute_capability) for b in plan.builds) == [
        ("ONNXRuntime", None),
        ("TensorRTRTX", "12.0"),
        ("TensorRTRTX", "8.6"),
    ]


def test_request_and_platform_from_the_api() -> None:
    spec = modelrollout.ModelRolloutSpec.model_validate(
        {
            "model": {
                "name": "resnet",
                "version": "v1",
                "uri": "https://models.example.com/resnet.onnx",
                "sha256": SHA,
            },
            "targets": {"regions": ["eu-west"]},
            "build": {
                "precision": "BF16",
                "backends": ["TensorRTRTX", "ONNXRuntime"],
                "profiles": [{"input": "x", "min": [1, 8], "opt": [4, 8], "max": [16, 8]}],
                "maxWorkspaceMiB": 512,
            },
            "strategy": {"waves": [{"name": "all", "regions": ["eu-west"]}]},
        }
    )
    built = planning.request_from_rollout(spec)
    assert built == planning.BuildRequest(
        model_sha256=SHA,
        backends=(B.TENSORRT_RTX, B.ONNXRUNTIME),
        precision=keys.Precision.BF16,
        profiles=(PROFILE,),
        workspace_bytes=512 << 20,
    )
    status = edgeagent.EdgeAgentStatus.model_validate(
        {
            "gpu": {"name": "RTX A4000", "computeCapability": "8.6", "memoryMiB": 16384},
            "runtimes": [
                {"name": "TensorRTRTX", "version": RTX_VERSION},
                {"name": "CUDA", "version": "12.9"},
            ],
        }
    )
    target = planning.platform_from_agent(status)
    assert target.runtime_version(B.TENSORRT_RTX) == RTX_VERSION
    assert target.signature() == ("8.6", (("TensorRTRTX", RTX_VERSION),))
    assert planning.platform_from_agent(None).signature() == (None, ())
