"""What both ends of the agent API agree on beyond the messages: metadata keys, states.

Hand-written (like `pushwire`), next to the generated code so the operator and the agent
import one definition instead of repeating string literals:

- gRPC metadata keys the agent sets and the operator reads (a push's resume offset, the
  offset an out-of-order chunk should have had, how long to wait before retrying, the
  highest grant sequence behind a stale grant's refusal), and
  those an edge gateway adds (which agent a call is for, who the verified caller is);
- `VersionState`, what an agent does with a version it stores, in the agent's own words;
  each member is the wire enum value `VERSION_STATE_<NAME>` (`wire_name`; a test pins
  the two to each other). The operator maps the wire enum once more, to the EdgeAgent
  API's `HeldModelState` (`edgewave_operator.agents.describing`), which is also the
  planner's vocabulary.

It imports no protobuf code, so the agent's core can name states without depending on
the generated messages (only its servicer translates).
"""

from __future__ import annotations

from enum import StrEnum

WIRE_PREFIX = "VERSION_STATE_"

RESUME_OFFSET_KEY = "edgewave-resume-offset"
"""Initial metadata of an accepted Push: the offset the agent expects data from."""
EXPECTED_OFFSET_KEY = "edgewave-expected-offset"
"""Trailing metadata of a refused chunk: the offset the agent expected."""
RETRY_AFTER_KEY = "edgewave-retry-after"
"""Trailing metadata of a temporary refusal: seconds to wait before trying again."""
HIGHEST_SEQUENCE_KEY = "edgewave-highest-sequence"
"""Trailing metadata of a stale grant: the highest sequence the agent accepted for the model."""
GATEWAY_ROUTE_KEY = "edgewave-agent"
"""Metadata of a call to an edge gateway: the agent it relays the call to."""
CALLER_CERT_KEY = "edgewave-caller-cert-bin"
"""Metadata of a call a gateway relays: the caller's certificate as the gateway verified it
(believed only on the agent's Unix control socket, never on a TCP port)."""


class VersionState(StrEnum):
    """What an agent does with one version of a model it stores."""

    ACTIVE = "active"
    PREVIOUS = "previous"
    STORED = "stored"
    FAILED = "failed"

    @property
    def wire_name(self) -> str:
        """The name of this state in the wire enum (`agent.proto`'s `VersionState`)."""
        return WIRE_PREFIX + self.name

    @classmethod
    def from_wire_name(cls, name: str) -> VersionState | None:
        """The state a wire enum name stands for (None: unspecified or unknown)."""
        member = name.removeprefix(WIRE_PREFIX)
        return cls.__members__.get(member) if name.startswith(WIRE_PREFIX) else None
