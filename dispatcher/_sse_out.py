"""The client's side of a stream: chunks as server-sent events, a batch at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from msgspec import Struct

from actors import encoder

_encode: Final = encoder.encode


def sse_body(chunks: Sequence[Struct]) -> bytes:
    """`chunks` as `data: {json}` events, each ended by its blank line, in one body.

    Per streamed chunk on the hot path: one encode each and one join for the batch
    (no per-event concatenations).
    """
    if not chunks:
        return b""
    return b"data: " + b"\n\ndata: ".join(list(map(_encode, chunks))) + b"\n\n"


__all__ = ["sse_body"]
