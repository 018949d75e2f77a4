"""An artifact file to push: its digest, size and chunks, never read whole into memory.

The file is memory-mapped, so pushing the same artifact to many agents at once reads it
from disk once (the page cache is shared) and each push copies only the chunk it sends.
`push_messages` goes further: it writes each `PushChunk` message's wire bytes straight from
the map, so a chunk is copied once on its way to gRPC instead of being sliced, copied into a
protobuf message and serialized again (each of those a pass over the data).
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgewave_api.errors import PermanentError
from edgewave_proto.agent.v1 import pushwire

_HASH_BLOCK = 4 << 20


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


@dataclass
class Artifact:
    path: Path
    digest: str
    size: int
    _map: mmap.mmap | None = field(default=None, repr=False)

    @classmethod
    def from_file(cls, path: Path, *, digest: str | None = None) -> Artifact:
        """Describe `path`; its sha256 is computed (streaming) unless given."""
        size = path.stat().st_size
        if size == 0:
            raise PermanentError(f"artifact {path} is empty: nothing to push")
        return cls(path=path, digest=digest or sha256_file(path), size=size)

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            with self.path.open("rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def chunks(self, *, offset: int, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) from `offset` to the end, `chunk_bytes` at a time."""
        mapped = self._mapped()
        position = offset
        while position < self.size:
            end = min(position + chunk_bytes, self.size)
            yield position, mapped[position:end]
            position = end

    def push_messages(self, *, offset: int, chunk_bytes: int) -> Iterator[tuple[int, int, bytes]]:
        """(offset, data length, serialized `PushChunk(offset=..., data=...)`) from `offset` on.

        The same bytes `PushChunk.SerializeToString()` gives (fields in number order), built
        with one copy of the chunk: send them with a serializer that passes bytes through.
        """
        mapped = self._mapped()
        position = offset
        while position < self.size:
            end = min(position + chunk_bytes, self.size)
            # No view of the map outlives the message, so `close` never meets an exported buffer.
            with memoryview(mapped)[position:end] as data:
                message = pushwire.encode_data_chunk(position, data)
            yield position, end - position, message
            position = end

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> Artifact:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
