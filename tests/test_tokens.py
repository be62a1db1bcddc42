"""Token estimates: calibrated text, the image tile rule, output reservation, tpm bursts."""
# ruff: noqa: RUF001  (the samples are Russian and Chinese on purpose)

from __future__ import annotations

import base64
import random
from time import monotonic

import anyio
import httpx
import msgspec
import pytest

from actors import ChatCall, ChatRequest, estimate_tokens, text_tokens
from actors._tokens import IMAGE_UNKNOWN_TOKENS, image_size, tile_tokens
from dispatcher import NoCapacity

from .helpers import completion, deployments, stack

pytestmark = pytest.mark.anyio

# Texts written for this test, with their o200k_base token counts (tiktoken 0.12, measured
# once offline: no tokenizer runs in the suite). bench/tokens.py measures the estimator on
# a large corpus; these keep it from drifting.
PROSE = (
    "The dispatcher keeps one actor per deployment. Each actor owns a bounded inbox, a "
    "rate limiter and a circuit breaker, so a slow provider fills its own queue and never "
    "anyone else's. When every candidate is busy, the request is refused at once with a "
    "clear answer instead of waiting without bound. Operators read the state of each "
    "deployment from the metrics endpoint, and a reload swaps the configuration without "
    "dropping the requests that are already in flight.\n\n"
    "Retries are decided by the class of the error alone: a timeout or an overloaded "
    "upstream is tried again after a short, jittered pause, while a request that the "
    "provider rejected as malformed moves straight on to the next candidate."
)
PROSE_TOKENS = 131
CODE = (
    "def settle(self, reserved: int, actual: int, now: float) -> None:\n"
    '    """Correct a reservation with the tokens the provider reported."""\n'
    "    if actual > reserved:\n"
    "        self.tokens.take(actual - reserved, now)\n"
    "    elif actual < reserved:\n"
    "        self.tokens.give_back(reserved - actual)\n\n\n"
    "class TokenBucket:\n"
    '    __slots__ = ("_level", "_rate", "_stamp", "capacity")\n\n'
    "    def __init__(self, per_minute: int, now: float) -> None:\n"
    "        self.capacity = float(per_minute)\n"
    "        self._rate = per_minute / 60.0\n"
    "        self._level = self.capacity\n"
    "        self._stamp = now\n\n"
    "    def wait_time(self, amount: float, now: float) -> float:\n"
    "        if not self.capacity:\n"
    "            return 0.0\n"
    "        self._refill(now)\n"
    "        need = min(amount, self.capacity)\n"
    "        return 0.0 if self._level >= need else (need - self._level) / self._rate\n"
)
SAMPLES = [
    pytest.param(PROSE, PROSE_TOKENS, id="prose"),
    pytest.param(CODE, 215, id="code"),
    pytest.param(
        '{"type": "function", "function": {"name": "get_weather", "description": "Get the '
        'current weather for a city", "parameters": {"type": "object", "properties": {"city": '
        '{"type": "string", "description": "City name, e.g. Paris"}, "unit": {"type": "string",'
        ' "enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer", "minimum": 1, '
        '"maximum": 14}}, "required": ["city"], "additionalProperties": false}, "strict": true}}',
        120,
        id="json",
    ),
    pytest.param(
        "Der Dispatcher hält für jede Bereitstellung einen eigenen Akteur. Jeder Akteur besitzt "
        "einen begrenzten Posteingang, einen Ratenbegrenzer und einen Schutzschalter, sodass ein "
        "langsamer Anbieter nur seine eigene Warteschlange füllt. Wenn alle Kandidaten "
        "ausgelastet sind, wird die Anfrage sofort mit einer klaren Antwort abgelehnt.",
        73,
        id="german",
    ),
    pytest.param(
        "Диспетчер держит по одному актору на каждое развёртывание. У каждого актора есть "
        "ограниченный почтовый ящик, ограничитель скорости и автоматический выключатель, "
        "поэтому медленный провайдер заполняет только свою очередь. Если все кандидаты заняты, "
        "запрос сразу же отклоняется с понятным ответом.",
        72,
        id="russian",
    ),
    pytest.param(
        "调度器为每个部署保留一个独立的参与者。每个参与者都有一个有界的收件箱、一个速率限制器和"
        "一个断路器，因此缓慢的提供商只会填满自己的队列。当所有候选者都忙碌时，请求会立即被拒绝，"
        "并给出明确的答复，而不是无限期地等待。",
        83,
        id="chinese",
    ),
    pytest.param(
        "ディスパッチャーはデプロイメントごとに一つのアクターを持ちます。各アクターは有限の受信箱、"
        "レート制限、サーキットブレーカーを持つため、遅いプロバイダーは自分のキューだけを埋めます。"
        "すべての候補が忙しいときは、無期限に待たせずにすぐ明確な応答で断ります。",
        105,
        id="japanese",
    ),
    pytest.param(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU"
        "5ErkJggg8f3a9c2e71b4d6058a1f0c9e3d7b2a4c6e8f01a3b5c7d9e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b"
        "550e8400-e29b-41d4-a716-446655440000 7c9e6679-7425-40de-944b-e07fc1f90ae7 "
        "sk-proj-Zq9XvJ3kW7pR2mT8yB4nC6hF1dG5sL0aEuQ",
        203,
        id="random-ids",
    ),
]


@pytest.mark.parametrize(("text", "real"), SAMPLES)
def test_text_estimate_is_within_a_quarter_of_o200k(text: str, real: int) -> None:
    """Prose, code, JSON, three scripts and random ids read within 0.75-1.3x of o200k."""
    assert 0.75 <= text_tokens(text) / real <= 1.3


def test_text_estimate_is_total() -> None:
    """Empty, control characters, emoji and very long runs all give a number."""
    assert text_tokens("") == 0
    assert text_tokens("\x00\x01\x7f") >= 1
    assert text_tokens("🙂" * 100) >= 50
    assert 900 <= text_tokens("a" * 8000) <= 1100  # a word no vocabulary has: ~1 per 8 bytes


def test_long_texts_are_sampled_and_scaled() -> None:
    """Past TEXT_SAMPLE_CHARS a text is read from samples: the count still scales with it."""
    assert 0.9 <= text_tokens(PROSE * 400) / (400 * text_tokens(PROSE)) <= 1.1
    assert 0.9 <= text_tokens(CODE * 2000) / (2000 * text_tokens(CODE)) <= 1.1


# -- images ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        pytest.param(1024, 1024, 765, id="square-scaled-to-768"),
        pytest.param(2048, 4096, 1105, id="openai-docs-example"),
        pytest.param(3000, 2000, 1105, id="photo"),
        pytest.param(512, 512, 255, id="one-tile"),
        pytest.param(100, 80, 255, id="small-not-upscaled"),
        pytest.param(20000, 100, 85 + 170 * 4, id="long-strip"),
        pytest.param(0, 100, IMAGE_UNKNOWN_TOKENS, id="no-size"),
    ],
)
def test_tile_rule(width: int, height: int, tokens: int) -> None:
    """85 + 170 per 512-px tile after fitting 2048x2048 and a 768-px short side."""
    assert tile_tokens(width, height) == tokens


def _png(width: int, height: int) -> bytes:
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + ihdr + b"\x00" * 4


def _gif(width: int, height: int) -> bytes:
    return b"GIF89a" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\x00" * 3


def _webp(chunk: bytes, width: int, height: int) -> bytes:
    if chunk == b"VP8 ":
        body = (
            b"\x00" * 3
            + b"\x9d\x01\x2a"
            + width.to_bytes(2, "little")
            + height.to_bytes(2, "little")
        )
    elif chunk == b"VP8L":
        body = b"\x2f" + ((width - 1) | (height - 1) << 14).to_bytes(4, "little")
    else:
        body = b"\x00" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF\x00\x00\x00\x00WEBP" + chunk + len(body).to_bytes(4, "little") + body


def _jpeg(width: int, height: int, *, frame: int = 0xC0, exif: int = 5000) -> bytes:
    app1 = b"\xff\xe1" + (exif + 2).to_bytes(2, "big") + b"E" * exif
    sof = (
        bytes([0xFF, frame])
        + b"\x00\x11\x08"
        + height.to_bytes(2, "big")
        + width.to_bytes(2, "big")
    )
    return b"\xff\xd8" + app1 + b"\xff\xff" + sof + b"\x03" + b"\x00" * 9


def _data_url(image: bytes, kind: str = "png", pad: int = 0) -> str:
    padding = random.Random(1).randbytes(pad)
    return f"data:image/{kind};base64," + base64.b64encode(image + padding).decode()


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(_png(3000, 2000), id="png"),
        pytest.param(_gif(3000, 2000), id="gif"),
        pytest.param(_webp(b"VP8 ", 3000, 2000), id="webp-lossy"),
        pytest.param(_webp(b"VP8L", 3000, 2000), id="webp-lossless"),
        pytest.param(_webp(b"VP8X", 3000, 2000), id="webp-extended"),
        pytest.param(_jpeg(3000, 2000), id="jpeg-after-exif"),
        pytest.param(_jpeg(3000, 2000, frame=0xC2), id="jpeg-progressive"),
    ],
)
def test_image_size_is_read_from_the_data_url_header(image: bytes) -> None:
    """PNG, GIF, WebP and JPEG sizes come from the first bytes, padding never decoded."""
    assert image_size(_data_url(image, pad=300_000)) == (3000, 2000)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "data:image/png;base64,!!!not base64!!!",
        "data:image/png,rawbytes",
        "data:image/png;base64,",
        _data_url(b"\xff\xd8\xff\xe1\x00"),  # JPEG cut inside a segment
        _data_url(b"\xff\xd8" + b"\xff\xe1\xff\xff" * 20),  # segments past the scanned head
        _data_url(b"BM" + b"\x00" * 40),  # BMP: not read
    ],
)
def test_unreadable_images_count_the_documented_default(url: str) -> None:
    """A link, garbage, or an unknown format is IMAGE_UNKNOWN_TOKENS, never an error."""
    request = _image_request(url)
    assert estimate_tokens(request, default_output=0).input < IMAGE_UNKNOWN_TOKENS + 20


def _image_request(url: str, detail: str | None = None, **extra: object) -> ChatRequest:
    image: dict[str, object] = {"url": url}
    if detail:
        image["detail"] = detail
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": image}]
    body = {"model": "g", "messages": [{"role": "user", "content": content}], **extra}
    return msgspec.convert(body, ChatRequest)


def test_low_detail_image_is_85_tokens() -> None:
    """detail: low is OpenAI's flat 85, whatever the size."""
    request = _image_request(_data_url(_png(4000, 4000)), "low")
    assert estimate_tokens(request, default_output=0).input < 85 + 20


# -- output reservation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "output"),
    [
        pytest.param({"max_completion_tokens": 300}, 300, id="max_completion_tokens"),
        pytest.param({"max_tokens": 200}, 200, id="max_tokens"),
        pytest.param({"max_completion_tokens": 300, "max_tokens": 200}, 300, id="both"),
        pytest.param({"max_tokens": 200, "n": 3}, 600, id="n-answers"),
        pytest.param({}, 1024, id="default"),
    ],
)
def test_output_reservation_is_the_requests_limit(extra: dict[str, int], output: int) -> None:
    """tpm reserves the request's output limit (times n), else the configured default."""
    request = msgspec.convert(
        {"model": "g", "messages": [{"role": "user", "content": "hi"}], **extra}, ChatRequest
    )
    estimate = estimate_tokens(request, default_output=1024)
    assert estimate.output == output
    assert estimate.reserve >= estimate.input + output


# -- through the supervisor -------------------------------------------------------------


async def test_image_request_is_not_refused_as_too_long() -> None:
    """A 600 KB base64 image to a max_input_tokens = 128000 deployment is served."""
    calls: list[bytes] = []

    async def ok(request: httpx.Request) -> httpx.Response:
        calls.append(request.content)
        return completion()

    url = _data_url(_png(3000, 2000), pad=450_000)
    assert len(url) > 600_000
    body = msgspec.to_builtins(_image_request(url))
    config = deployments("a g max_input_tokens=128000")
    async with stack(config, {"a": ok}) as s:
        result = await s.supervisor.complete(msgspec.convert(body, ChatCall))
    assert result.deployment == "a"
    assert len(calls) == 1


async def test_tpm_burst_overshoots_the_budget_by_at_most_5_percent() -> None:
    """A burst against tpm reserves input and output: what the provider reports as used
    stays within the budget (+5 %), and the rest is refused with rate_limited."""
    tpm, answer = 10_000, 200
    used: list[int] = []

    async def upstream(request: httpx.Request) -> httpx.Response:
        # The model spends its whole output limit; the prompt is what o200k counts.
        used.append(PROSE_TOKENS + answer)
        return completion(
            prompt_tokens=PROSE_TOKENS, completion_tokens=answer, total_tokens=PROSE_TOKENS + answer
        )

    refused: list[NoCapacity] = []
    call = msgspec.convert(
        {"model": "g", "messages": [{"role": "user", "content": PROSE}], "max_tokens": answer},
        ChatCall,
    )
    async with stack(deployments(f"a g tpm={tpm} inbox=100"), {"a": upstream}) as s:

        async def one() -> None:
            try:
                await s.supervisor.complete(call)
            except NoCapacity as exc:
                refused.append(exc)

        started = monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(80):
                tg.start_soon(one)
        refill = tpm / 60.0 * (monotonic() - started)
    assert refused and all(exc.reason == "rate_limited" for exc in refused)
    assert sum(used) <= tpm * 1.05 + refill
    assert sum(used) >= tpm * 0.6  # and the budget is used, not wasted on margins
