"""One inference request to an edge agent through `tritonclient.grpc` (KServe v2), over TLS.

What any client of an edge node does: connect to its serving port, verifying the agent's
certificate against the operator's CA, send an image, read the probabilities. The agent
answers with the version that served the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from edgewave_api.errors import TemporaryError
from edgewave_operator.demo import models


@dataclass(frozen=True)
class Answer:
    agent: str
    model: str
    version: str
    probabilities: tuple[float, ...]
    milliseconds: float

    @property
    def top_class(self) -> int:
        return int(np.argmax(self.probabilities))

    def line(self) -> str:
        shown = ", ".join(f"{p:.3f}" for p in self.probabilities)
        return (
            f"inference: {self.agent} answered {self.model} {self.version}: class "
            f"{self.top_class} (p={self.probabilities[self.top_class]:.3f}; [{shown}]) "
            f"in {self.milliseconds:.1f} ms"
        )


def connect(endpoint: str, *, ca_file: Path) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=endpoint, ssl=True, root_certificates=str(ca_file))


def image(shape: tuple[int, ...], *, seed: int = 7) -> np.ndarray:
    """A deterministic random image of `shape`, as float32."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def ask(
    client: triton.InferenceServerClient,
    *,
    model: str,
    pixels: np.ndarray,
    timeout: float = 10.0,
) -> tuple[str, np.ndarray]:
    """(served version, probabilities) for `pixels`; raises InferenceServerException."""
    request = triton.InferInput(models.INPUT, list(pixels.shape), "FP32")
    request.set_data_from_numpy(pixels)
    result = client.infer(
        model,
        [request],
        outputs=[triton.InferRequestedOutput(models.OUTPUT)],
        client_timeout=timeout,
    )
    output = result.as_numpy(models.OUTPUT)
    if output is None:
        raise TemporaryError(f"{model} answered without {models.OUTPUT}")
    return str(result.get_response().model_version), output


def once(*, agent: str, endpoint: str, ca_file: Path, model: str, shape: tuple[int, ...]) -> Answer:
    """Ask the agent at `endpoint` to classify one image; errors are one line."""
    client = connect(endpoint, ca_file=ca_file)
    try:
        started = time.perf_counter()
        version, output = ask(client, model=model, pixels=image(shape))
        elapsed = (time.perf_counter() - started) * 1000
    except InferenceServerException as error:
        raise TemporaryError(
            f"agent {agent} at {endpoint} did not answer {model}: {error.message()}"
        ) from None
    finally:
        client.close()
    return Answer(
        agent=agent,
        model=model,
        version=version,
        probabilities=tuple(float(p) for p in output[0]),
        milliseconds=elapsed,
    )
