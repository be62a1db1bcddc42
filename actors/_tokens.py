"""Token estimates for admission: what a request takes of a context window and a tpm budget.

Made once per request, before any attempt, on the hot path, so no tokenizer runs here
(none works offline from PyPI without shipping a vocabulary; each provider's differs
anyway). Instead:

- **text** is read by a linear model over character classes of its UTF-8 bytes (word
  starts, camelCase and case runs, digits and digit runs, punctuation, newlines, long
  letter runs, and per-script counts for non-ASCII text), computed with
  `bytes.translate` and `bytes.count` only: no Python loop over characters. It was fitted
  to OpenAI's `o200k_base` on a corpus of prose, code, JSON, logs, random identifiers and
  45 other languages in 16 scripts (`bench/tokens.py` measures it again); the error is in
  the README.
- **images** follow OpenAI's tile rule (85 tokens at ``detail: low``; else 85 + 170 per
  512-pixel tile after fitting 2048 x 2048 and bringing the short side to 768). The size
  is read from the header of a base64 ``data:`` URL (PNG, JPEG, GIF, WebP); an image
  behind a link counts `IMAGE_UNKNOWN_TOKENS`.
- **audio and files** count by their decoded size (rough, documented constants).
- **structure** adds OpenAI's per-message framing.

The output side is the request's own limit (`max_completion_tokens`, else `max_tokens`,
times `n`), or the configured default: OpenAI's own limiter counts it the same way, so
a burst cannot spend the tpm budget on answers nobody reserved.
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Iterable
from typing import Final

import msgspec
from msgspec import UNSET

from ._chat import (
    AssistantMessage,
    AudioPart,
    ChatRequest,
    FilePart,
    ImagePart,
    ImageURL,
    TextPart,
    ToolCall,
    ToolMessage,
    encoder,
)

IMAGE_LOW_TOKENS: Final = 85
"""An image at ``detail: low`` (OpenAI's fixed price), and the base of every image."""
IMAGE_TILE_TOKENS: Final = 170
IMAGE_UNKNOWN_TOKENS: Final = 765
"""An image whose size is unknown (a link): a 1024 x 1024 image at high detail, 4 tiles."""
AUDIO_BYTES_PER_TOKEN: Final = 1600
"""Audio input: about 10 tokens a second at 16 kB/s (128 kbit/s); a rough figure."""
FILE_BYTES_PER_TOKEN: Final = 20
"""A file (PDF) part: its decoded size over this (text plus a page image per ~30 kB page)."""
FILE_UNKNOWN_TOKENS: Final = 1500
"""A file part sent by id only (about one page)."""
MESSAGE_TOKENS: Final = 3
"""Framing of each message (role and separators), as OpenAI counts it."""
REPLY_TOKENS: Final = 3
"""The assistant reply's own framing."""
TOOL_TOKENS: Final = 8
"""Framing of each tool definition or tool call, besides its JSON."""
IMAGE_HEADER_BYTES: Final = 64 * 1024
"""How far into an image a JPEG's size is looked for (EXIF data comes first)."""
TEXT_SAMPLE_CHARS: Final = 8 * 1024
"""Texts longer than this are estimated from samples (see `text_tokens`)."""
TEXT_SAMPLES: Final = 32
INPUT_RESERVE_MARGIN: Final = 1.2
"""tpm reserves the input estimate times this: one text in twenty reads 0.8x or less of its
real count, and a burst of such requests must not overspend the budget (settled after)."""


class TokenEstimate(msgspec.Struct, frozen=True):
    """What a request takes: `input` (prompt) and `output` (its answer's limit)."""

    input: int
    output: int

    @property
    def reserve(self) -> int:
        """What is reserved against tpm (settled on the usage the provider reports)."""
        return math.ceil(self.input * INPUT_RESERVE_MARGIN) + self.output


def estimate_tokens(request: ChatRequest, *, default_output: int) -> TokenEstimate:
    """The token estimate of `request`; `default_output` when it sets no output limit."""
    texts: list[str] = []
    fixed = REPLY_TOKENS
    for message in request.messages:
        fixed += MESSAGE_TOKENS
        name = getattr(message, "name", UNSET)
        if isinstance(name, str):
            texts.append(name)
        content = message.content
        if isinstance(content, str):
            texts.append(content)
        elif content is not None:
            fixed += _parts(content, texts)
        if isinstance(message, AssistantMessage):
            if isinstance(message.refusal, str):
                texts.append(message.refusal)
            for call in message.tool_calls or ():
                fixed += TOOL_TOKENS
                if isinstance(call, ToolCall):
                    texts += (call.function.name, call.function.arguments)
                else:
                    texts += (call.custom.name, call.custom.input)
            if message.function_call:
                fixed += TOOL_TOKENS
                texts += (message.function_call.name, message.function_call.arguments)
        elif isinstance(message, ToolMessage):
            texts.append(message.tool_call_id)
    for tools in (request.tools, request.functions):
        if tools:
            fixed += TOOL_TOKENS * len(tools)
            texts.append(encoder.encode(tools).decode())
    if request.response_format and request.response_format.json_schema:
        texts.append(encoder.encode(request.response_format.json_schema).decode())
    return TokenEstimate(fixed + text_tokens("\n".join(texts)), _output(request, default_output))


def _output(request: ChatRequest, default: int) -> int:
    limit = request.max_completion_tokens or request.max_tokens or default
    return limit * (request.n or 1)


def _parts(parts: Iterable[object], texts: list[str]) -> int:
    """Collect the text of content parts into `texts`; return the tokens of the others."""
    tokens = 0
    for part in parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            tokens += image_tokens(part.image_url)
        elif isinstance(part, AudioPart):
            tokens += 1 + _base64_size(part.input_audio.data) // AUDIO_BYTES_PER_TOKEN
        elif isinstance(part, FilePart):
            data = part.file.file_data
            if isinstance(data, str):
                tokens += 1 + _base64_size(data) // FILE_BYTES_PER_TOKEN
            else:
                tokens += FILE_UNKNOWN_TOKENS
        else:  # a part this estimator does not know: its JSON as text
            texts.append(encoder.encode(part).decode())
    return tokens


def _base64_size(data: str) -> int:
    return len(data) * 3 // 4


# -- images ----------------------------------------------------------------------------


def image_tokens(image: ImageURL) -> int:
    """OpenAI's tile rule for one image part (its size from a data URL's header, if any)."""
    if image.detail == "low":
        return IMAGE_LOW_TOKENS
    size = image_size(image.url) if image.url.startswith("data:") else None
    if size is None:
        return IMAGE_UNKNOWN_TOKENS
    return tile_tokens(*size)


def tile_tokens(width: int, height: int) -> int:
    """85 + 170 per 512-px tile, after fitting 2048 x 2048 and a 768-px short side."""
    if width <= 0 or height <= 0:
        return IMAGE_UNKNOWN_TOKENS
    scale = min(1.0, 2048 / max(width, height))
    scale *= min(1.0, 768 / (min(width, height) * scale))
    tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    return IMAGE_LOW_TOKENS + IMAGE_TILE_TOKENS * tiles


def image_size(url: str) -> tuple[int, int] | None:
    """(width, height) of a base64 ``data:`` URL's PNG, JPEG, GIF or WebP image, else None.

    Only the header is decoded (at most `IMAGE_HEADER_BYTES`), never the whole image.
    """
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    raw = _decode_head(data, 64)  # enough for PNG, GIF and WebP
    if raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) >= 24:
        return _be(raw, 16, 4), _be(raw, 20, 4)
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        return _le(raw, 6, 2), _le(raw, 8, 2)
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return _webp_size(raw)
    if raw[:2] == b"\xff\xd8":  # JPEG: the size comes after EXIF and other segments
        return _jpeg_size(_decode_head(data, IMAGE_HEADER_BYTES))
    return None


def _decode_head(data: str, size: int) -> bytes:
    """The first `size` bytes (about) of base64 `data`; b"" when it is not base64."""
    chars = min(len(data), size * 4 // 3 + 4) // 4 * 4
    try:
        return binascii.a2b_base64(data[:chars])
    except (binascii.Error, ValueError):
        return b""


def _be(raw: bytes, at: int, size: int) -> int:
    return int.from_bytes(raw[at : at + size], "big")


def _le(raw: bytes, at: int, size: int) -> int:
    return int.from_bytes(raw[at : at + size], "little")


def _webp_size(raw: bytes) -> tuple[int, int] | None:
    chunk = raw[12:16]
    if chunk == b"VP8 " and len(raw) >= 30:  # lossy: 14-bit sizes after the start code
        return _le(raw, 26, 2) & 0x3FFF, _le(raw, 28, 2) & 0x3FFF
    if chunk == b"VP8L" and len(raw) >= 25:  # lossless: 14-bit sizes minus one, bit-packed
        bits = _le(raw, 21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(raw) >= 30:  # extended: 24-bit canvas sizes minus one
        return _le(raw, 24, 3) + 1, _le(raw, 27, 3) + 1
    return None


_JPEG_FRAMES: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (baseline, progressive, ...): they hold the image size."""


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 <= len(raw):
        if raw[at] != 0xFF:
            return None
        marker = raw[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _JPEG_FRAMES:
            return _be(raw, at + 7, 2), _be(raw, at + 5, 2)
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            at += 2
            continue
        at += 2 + _be(raw, at + 2, 2)
    return None


# -- text ------------------------------------------------------------------------------


def _table(*classes: tuple[Iterable[int], bytes]) -> bytes:
    table = bytearray(b"." * 256)
    for members, to in classes:
        for byte in members:
            table[byte] = to[0]
    return bytes(table)


def _span(first: int, last: int) -> range:
    return range(first, last + 1)


# Every byte of the UTF-8 text becomes its class; counts of classes and pairs are features.
_CLASSES: Final = _table(
    (_span(0x61, 0x7A), b"a"),
    (_span(0x41, 0x5A), b"A"),
    (_span(0x30, 0x39), b"0"),
    (b" \t\r", b" "),
    (b"\n", b"\n"),
    (_span(0x80, 0xBF), b"c"),  # continuation bytes
    (_span(0xC0, 0xCD), b"L"),  # Latin-1 supplement, Latin extended, IPA (U+0080-037F)
    (_span(0xCE, 0xD5), b"Y"),  # Greek, Cyrillic, Armenian (U+0380-057F)
    (_span(0xD6, 0xDF), b"H"),  # Hebrew, Arabic, Syriac, Thaana (U+0580-07FF)
    (_span(0xE0, 0xE2), b"I"),  # Indic, Thai, Georgian, Ethiopic, punctuation (U+0800-2FFF)
    (b"\xe3", b"K"),  # CJK punctuation, kana (U+3000-3FFF)
    (_span(0xE4, 0xE9), b"Z"),  # Han (U+4000-9FFF)
    (_span(0xEA, 0xED), b"G"),  # Hangul (U+A000-DFFF)
    (_span(0xEE, 0xFF), b"E"),  # fullwidth forms, emoji and other astral characters
)
# Letters of any script are "a": word starts are the places where ".a" occurs.
_LETTERS: Final = _table(
    (_span(0x41, 0x5A), b"a"), (_span(0x61, 0x7A), b"a"), (_span(0x80, 0xFF), b"a")
)
_DIGITS: Final = _table((_span(0x30, 0x39), b"0"))

# Weights fitted (non-negative least squares on relative error) to o200k_base counts.
_W_WORD: Final = 0.9533
_W_LONG: Final = 0.9414  # per 8 bytes of a letter run: rare and random words split
_W_DIGIT_RUN: Final = 1.8455  # digits go in groups of up to three
_W_CAMEL: Final = 0.8185  # "aA": a case change inside a word starts a new token
_W_UPPER_UPPER: Final = 0.1905
_W_NEWLINE: Final = 1.4123
_W_DOUBLE_SPACE: Final = 0.0400
_W_PUNCT: Final = 0.2280
_W_SPACE_PUNCT: Final = 0.8037  # " (" and ' "' start a token; "});" is often one
_W_SCRIPT: Final = (
    (b"L", 1.2083),  # an accented Latin letter splits its word
    (b"Y", 0.0161),
    (b"H", 0.0426),
    (b"K", 0.2645),
    (b"Z", 0.4164),
    (b"G", 0.2155),
    (b"E", 0.6),  # emoji and fullwidth forms (rare in the corpus: set by hand, ~1 each)
)


def text_tokens(text: str) -> int:
    """About how many `o200k_base` tokens `text` is (see the module docstring).

    A text longer than `TEXT_SAMPLE_CHARS` is read from `TEXT_SAMPLES` evenly spaced pieces
    and scaled to its length, so the cost on the hot path has a bound.
    """
    if not text:
        return 0
    size = len(text)
    if size <= TEXT_SAMPLE_CHARS:
        return max(1, round(_features(text)))
    piece = TEXT_SAMPLE_CHARS // TEXT_SAMPLES
    step = (size - piece) // (TEXT_SAMPLES - 1)
    sample = " ".join(text[i * step : i * step + piece] for i in range(TEXT_SAMPLES))
    return max(1, round(_features(sample) * size / (piece * TEXT_SAMPLES)))


def _features(text: str) -> float:
    raw = text.encode("utf-8", "surrogatepass")  # total: never raises, whatever the str
    classes = raw.translate(_CLASSES)
    letters = raw.translate(_LETTERS)
    digits = raw.translate(_DIGITS)
    estimate = (
        _W_WORD * (letters.count(b".a") + (letters[0] == 0x61))
        + _W_LONG * letters.count(b"aaaaaaaa")
        + _W_DIGIT_RUN * (digits.count(b".0") + (digits[0] == 0x30))
        + _W_CAMEL * classes.count(b"aA")
        + _W_UPPER_UPPER * classes.count(b"AA")
        + _W_NEWLINE * classes.count(b"\n")
        + _W_DOUBLE_SPACE * classes.count(b"  ")
        + _W_PUNCT * classes.count(b".")
        + _W_SPACE_PUNCT * classes.count(b" .")
    )
    if not raw.isascii():
        for code, weight in _W_SCRIPT:
            estimate += weight * classes.count(code)
    return estimate
