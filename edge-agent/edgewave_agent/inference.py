"""KServe v2 / Open Inference Protocol servicer over the agent's active models.

Served under the standard path `/inference.GRPCInferenceService/<Method>` (what tritonclient
and other KServe clients call) as well as the generated `edgewave.kserve.v2` one; see
grpc_predict_v2.proto for why the proto package differs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from edgewave_agent import errors, inventory, tensors
from edgewave_agent.service import AgentCore, abort_with
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2 as kserve
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2_grpc as kserve_grpc

# The path standard KServe/Triton clients call.
KSERVE_SERVICE = "inference.GRPCInferenceService"


class InferenceServicer(kserve_grpc.GRPCInferenceServiceServicer):
    """KServe v2 / Open Inference Protocol over the active models."""

    def __init__(self, core: AgentCore) -> None:
        self._core = core

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
        self, request: kserve.ModelInferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> kserve.ModelInferResponse:
        try:
            inputs = tensors.decode_inputs(request)
            version, outputs = await asyncio.to_thread(
                self._core.serving.infer,
                request.model_name,
                version=request.model_version,
                inputs=inputs,
            )
            response = kserve.ModelInferResponse(
                model_name=request.model_name, model_version=version, id=request.id
            )
            tensors.encode_outputs(response, outputs, wanted=[o.name for o in request.outputs])
        except errors.AgentError as error:
            await abort_with(context, error)
        return response


def add_inference_servicer(servicer: InferenceServicer, server: grpc.aio.Server) -> None:
    """Serve KServe v2 under its generated path and the standard `inference.` one."""
    kserve_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
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
        "ModelInfer": (servicer.ModelInfer, kserve.ModelInferRequest, kserve.ModelInferResponse),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            function,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )
        for name, (function, request_type, response_type) in methods.items()
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(KSERVE_SERVICE, handlers),)
    )
