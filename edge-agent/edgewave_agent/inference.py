"""KServe v2 / Open Inference Protocol servicer over the agent's active models.

Served under the standard path `/inference.GRPCInferenceService/<Method>` (what tritonclient
and other KServe clients call) as well as the generated `edgewave.kserve.v2` one; see
grpc_predict_v2.proto for why the proto package differs.

One request must not stall the agent: ModelInfer arrives as bytes (gRPC's deserializer is
skipped, it would parse on the event loop) and is parsed, decoded, run and encoded on
this servicer's own bounded pool of worker threads, never on the event loop nor on the
threads the agent API uses. Sizes are bounded before work: gRPC refuses messages over
`inference.max_request_bytes`, `tensors` refuses shapes over `inference.max_elements` and
outputs over `inference.max_response_bytes`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from edgewave_agent import errors, inferwire, inventory, memory, tensors
from edgewave_agent.service import AgentCore, abort_with
from edgewave_agent.settings import InferenceConfig
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2 as kserve

# The path standard KServe/Triton clients call.
KSERVE_SERVICE = "inference.GRPCInferenceService"
# After a request and response this large together, malloc's free pages go back at once.
_RELEASE_BYTES = 8 << 20


class InferenceServicer:
    """KServe v2 / Open Inference Protocol over the active models."""

    def __init__(self, core: AgentCore, *, limits: InferenceConfig) -> None:
        self._core = core
        self._limits = limits
        self._workers = concurrent.futures.ThreadPoolExecutor(
            max_workers=limits.threads, thread_name_prefix="inference"
        )

    def close(self) -> None:
        """Stop the workers; requests not started are dropped (the server stopped first)."""
        self._workers.shutdown(wait=False, cancel_futures=True)

    async def ServerLive(
        self, request: kserve.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kserve.ServerLiveResponse:
        return kserve.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: kserve.ServerReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kserve.ServerReadyResponse:
        return kserve.ServerReadyResponse(ready=self._core.serving.all_ready())

    async def ModelReady(
        self, request: kserve.ModelReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kserve.ModelReadyResponse:
        try:
            self._core.serving.loaded(request.name, request.version)
        except errors.AgentError:
            return kserve.ModelReadyResponse(ready=False)
        return kserve.ModelReadyResponse(ready=True)

    async def ServerMetadata(
        self, request: kserve.ServerMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kserve.ServerMetadataResponse:
        return kserve.ServerMetadataResponse(
            name="edgewave-agent", version=inventory.agent_version(), extensions=[]
        )

    async def ModelMetadata(
        self, request: kserve.ModelMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kserve.ModelMetadataResponse:
        try:
            ref, model = self._core.serving.loaded(request.name, request.version)
        except errors.AgentError as error:
            await abort_with(context, error)
        backend = self._core.backends.get(ref.backend)
        tensor = kserve.ModelMetadataResponse.TensorMetadata
        return kserve.ModelMetadataResponse(
            name=request.name,
            versions=[ref.version],
            platform=backend.platform if backend else ref.backend,
            inputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in model.inputs],
            outputs=[
                tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in model.outputs
            ],
        )

    async def ModelInfer(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        """A serialized ModelInferRequest in, a serialized ModelInferResponse out."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._workers, self._answer, request)
        except errors.AgentError as error:
            await abort_with(context, error)

    def _answer(self, data: bytes) -> bytes:
        """Parse, check, run and encode one request. Blocking: runs on a worker thread."""
        try:
            request, raw = inferwire.split_request(data)
        except (DecodeError, inferwire.DecodeError):
            raise errors.InvalidRequest("the message is not a valid ModelInferRequest") from None
        inputs = tensors.decode_inputs(
            request, max_elements=self._limits.max_elements, raw=raw or None
        )
        version, outputs = self._core.serving.infer(
            request.model_name, version=request.model_version, inputs=inputs
        )
        del inputs, raw
        response = kserve.ModelInferResponse(
            model_name=request.model_name, model_version=version, id=request.id
        )
        raw_outputs = tensors.encode_outputs(
            response,
            outputs,
            wanted=[o.name for o in request.outputs],
            max_bytes=int(self._limits.max_response_bytes),
        )
        encoded = inferwire.join_response(response.SerializeToString(), raw_outputs)
        del outputs, raw_outputs
        if len(data) + len(encoded) >= _RELEASE_BYTES:
            memory.release_free_memory()
        return encoded


def _identity(data: bytes) -> bytes:
    return data


def add_inference_servicer(servicer: InferenceServicer, server: grpc.aio.Server) -> None:
    """Serve KServe v2 under its generated path and the standard `inference.` one;
    ModelInfer's messages pass as bytes, (de)serialized by the servicer's workers."""
    methods: dict[str, tuple[Any, Any, Any]] = {
        "ServerLive": (servicer.ServerLive, kserve.ServerLiveRequest, kserve.ServerLiveResponse),
        "ServerReady": (
            servicer.ServerReady,
            kserve.ServerReadyRequest,
            kserve.ServerReadyResponse,
        ),
        "ModelReady": (servicer.ModelReady, kserve.ModelReadyRequest, kserve.ModelReadyResponse),
        "ServerMetadata": (
            servicer.ServerMetadata,
            kserve.ServerMetadataRequest,
            kserve.ServerMetadataResponse,
        ),
        "ModelMetadata": (
            servicer.ModelMetadata,
            kserve.ModelMetadataRequest,
            kserve.ModelMetadataResponse,
        ),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            function,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )
        for name, (function, request_type, response_type) in methods.items()
    }
    handlers["ModelInfer"] = grpc.unary_unary_rpc_method_handler(
        servicer.ModelInfer, request_deserializer=_identity, response_serializer=_identity
    )
    generated = kserve.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, handlers)
            for name in (generated, KSERVE_SERVICE)
        )
    )
