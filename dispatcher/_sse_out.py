"""The client's side of a stream: chunks as server-sent events, a batch at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from msgspec import Struct

from actors import encoder

_encode_lines: Final = encoder.encode_lines


def sse_body(chunks: Sequence[Struct]) -> bytes:
    """`chunks` as `data: {json}` events, each ended by its blank line, in one body.

    On the hot path: one encode for the batch, as JSON lines (compact JSON has no raw
    newline, so each line ends one chunk), whose line ends become the event separators.
    """
    if not chunks:
        return b""
    return b"data: " + _encode_lines(chunks)[:-1].replace(b"\n", b"\n\ndata: ") + b"\n\n"


__all__ = ["sse_body"]
