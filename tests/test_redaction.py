"""No configured secret survives in what a provider's text becomes: redacted whole, then cut."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from actors import ChatCall
from actors._redact import MESSAGE_CHARS, MIN_PARTIAL_CHARS, Redactor, deployment_secrets
from actors.providers._bedrock_sigv4 import BedrockSigV4
from config import parse_config
from dispatcher import AllAttemptsFailed

from .helpers import chat_json, stack

pytestmark = pytest.mark.anyio

KEY = "sk-Zq9XvJ3kW7pR2mT8yB4nC6hF1dG5sL0aEuQ"
"""A key no error text contains by chance."""
PEEK = 5
"""The shortest piece of a secret that counts as leaked (pieces of 4 begin too many words)."""


def leaks(text: str, secret: str = KEY) -> list[str]:
    """Every piece of `secret` (PEEK characters or more) found in `text`."""
    return [
        secret[i : i + PEEK] for i in range(len(secret) - PEEK + 1) if secret[i : i + PEEK] in text
    ]


# -- the redactor ---------------------------------------------------------------------


def test_whole_secrets_are_replaced_and_short_values_are_not() -> None:
    """Every occurrence goes; a placeholder shorter than a real key is left alone."""
    redact = Redactor([KEY, "x"])
    assert redact(f"bad key {KEY}, again {KEY} (x)") == "bad key ***, again *** (x)"


def test_json_escaped_secrets_are_replaced() -> None:
    """An AWS secret with '/' is found as a JSON body quotes it, escaped slashes included."""
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    redact = Redactor([secret])
    assert redact(json.dumps({"m": secret})) == '{"m": "***"}'
    assert redact('{"m": "' + secret.replace("/", "\\/") + '"}') == '{"m": "***"}'


@given(
    before=st.integers(min_value=0, max_value=2 * MESSAGE_CHARS),
    after=st.integers(min_value=0, max_value=50),
    limit=st.integers(min_value=20, max_value=MESSAGE_CHARS),
)
def test_a_secret_straddling_the_cut_leaves_no_prefix(before: int, after: int, limit: int) -> None:
    """Wherever a secret sits relative to the cut, no piece of it survives."""
    text = "a" * before + KEY + "b" * after
    out = Redactor([KEY]).cut(text, limit)
    assert len(out) <= limit
    assert leaks(out) == []


@pytest.mark.parametrize("size", range(MIN_PARTIAL_CHARS, len(KEY)))
def test_a_text_cut_before_it_got_here_loses_the_piece_of_a_secret_at_the_cut(size: int) -> None:
    """A text already cut (at its end, or at a '…') inside a secret loses that piece."""
    redact = Redactor([KEY])
    assert redact.cut("reflected: " + KEY[:size]) == "reflected: ***"
    assert redact.cut("body: " + KEY[:size] + "… and more") == "body: ***… and more"


def test_secrets_learned_later_are_redacted_too() -> None:
    """A signer's credentials, resolved after start, are searched as soon as it has them."""
    learned: list[str] = []
    redact = Redactor([], more=lambda: learned)
    assert redact("AKIDEXAMPLE12345") == "AKIDEXAMPLE12345"
    learned.append("AKIDEXAMPLE12345")
    assert redact("id AKIDEXAMPLE12345") == "id ***"


def test_deployment_secrets_are_key_password_and_credential_headers() -> None:
    """api_key, a password in api_base, and header values named like credentials."""
    [spec] = parse_config(
        """
[[deployment]]
name = "d"
group = "g"
provider = "openai-compatible"
model = "m"
api_base = "https://user:pa%2Fss-word-1@proxy.example/v1"
api_key = "sk-the-api-key-1"
headers = {"X-Proxy-Authorization" = "Bearer proxy-token-123", "X-Title" = "my app"}
"""
    ).deployment
    found = deployment_secrets(spec)
    assert {"sk-the-api-key-1", "pa/ss-word-1", "proxy-token-123"} <= set(found)
    assert "my app" not in found


def test_sigv4_signer_remembers_what_it_signed_with() -> None:
    """The access key id, secret key and session token of a signature are secrets."""
    signer = BedrockSigV4("us-east-1", Credentials("AKIDSIGNEDWITH01", "sec/ret/key/01", "tok-01"))
    assert signer.secrets() == ()
    request = httpx.Request(
        "POST", "https://bedrock-runtime.us-east-1.amazonaws.com/x", content=b"{}"
    )
    next(signer.auth_flow(request))
    assert signer.secrets() == ("AKIDSIGNEDWITH01", "sec/ret/key/01", "tok-01")


# -- every provider, every way its text reaches us ------------------------------------

_BASES = {
    "openai": "https://api.openai.test/v1",
    "azure": "https://res.openai.azure.test",
    "anthropic": "https://api.anthropic.test",
    "gemini": "https://gemini.test",
    "mistral": "https://api.mistral.test/v1",
    "bedrock": "https://bedrock-runtime.us-east-1.amazonaws.com",
}


def _error_body(provider: str, message: str) -> tuple[int, dict[str, str], bytes]:
    """A 400 in `provider`'s own error shape whose message is `message`."""
    body: object
    headers = {"content-type": "application/json"}
    if provider == "anthropic":
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    elif provider == "gemini":
        body = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    elif provider == "mistral":
        body = {"object": "error", "message": message, "type": "invalid_request_error"}
    elif provider == "bedrock":
        body = {"message": message}
        headers["x-amzn-errortype"] = "ValidationException"
    else:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return 400, headers, msgspec.json.encode(body)


def _stream_error(provider: str, message: str) -> bytes:
    """An in-band error event of `provider`'s stream whose message is `message`."""
    if provider == "anthropic":
        data = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return b"event: error\ndata: " + msgspec.json.encode(data) + b"\n\n"
    if provider == "gemini":
        data = {"error": {"code": 500, "message": message, "status": "INTERNAL"}}
    elif provider == "mistral":
        data = {"object": "error", "message": message, "type": "internal_error"}
    else:
        data = {"error": {"message": message, "code": "server_error"}}
    return b"data: " + msgspec.json.encode(data) + b"\n\n"


Shape = Callable[[str, str], httpx.Response]


def _json_error(provider: str, text: str) -> httpx.Response:
    status, headers, body = _error_body(provider, text)
    return httpx.Response(status, headers=headers, content=body)


def _text_error(provider: str, text: str) -> httpx.Response:
    return httpx.Response(503, headers={"content-type": "text/html"}, content=text.encode())


def _garbage_200(provider: str, text: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, content=text.encode())


def _stream(provider: str, text: str) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=_stream_error(provider, text)
    )


def _garbage_stream(provider: str, text: str) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=b"data: " + text.encode() + b"\n\n",
    )


SHAPES: dict[str, tuple[Shape, bool]] = {
    "json-error": (_json_error, False),
    "text-error": (_text_error, False),
    "garbage-200": (_garbage_200, False),
    "stream-in-band-error": (_stream, True),
    "stream-garbage-event": (_garbage_stream, True),
}

# Padding before the key: every offset around the old cuts (200 and 500 characters, minus
# what each adapter puts in front) and around the excerpt's 4 KB window.
OFFSETS = (*range(120, 520, 3), *range(4000, 4100, 9))


def _config(provider: str) -> str:
    lines = [
        "[router]",
        "num_retries = 0",
        "[router.cooldown]",
        "allowed_fails = 1000000",
        "[[deployment]]",
        'name = "d"',
        'group = "g"',
        f'provider = "{provider}"',
        'model = "m"',
        f'api_base = "{_BASES[provider]}"',
        f'api_key = "{KEY}"',
    ]
    if provider == "azure":
        lines.append('api_version = "2024-10-21"')
    return "\n".join(lines)


# Streamed shapes leave out bedrock (a binary event stream) and azure (openai's parser).
_CASES = [
    (provider, shape)
    for shape, (_, streamed) in SHAPES.items()
    for provider in _BASES
    if not (streamed and provider in ("bedrock", "azure"))
]


@pytest.mark.parametrize(("provider", "shape"), _CASES)
async def test_no_provider_text_leaks_a_piece_of_the_key(provider: str, shape: str) -> None:
    """An upstream reflecting the key at any offset leaks none of it into attempt messages."""
    make, streamed = SHAPES[shape]
    offsets = iter(OFFSETS)
    texts: list[str] = []

    async def reflect(request: httpx.Request) -> httpx.Response:
        text = "k" * next(offsets) + KEY + " end"
        texts.append(text)
        return make(provider, text)

    messages: list[str] = []
    async with stack(_config(provider), {"d": reflect}) as s:
        for _ in OFFSETS:
            call = msgspec.convert(chat_json(stream=streamed), ChatCall)
            try:
                if streamed:
                    stream = await s.supervisor.open_stream(call)
                    await stream.aclose()
                else:
                    await s.supervisor.complete(call)
            except AllAttemptsFailed as exc:
                messages += [a.message or "" for a in exc.attempts]
    assert len(messages) == len(OFFSETS)
    assert all(len(m) <= MESSAGE_CHARS for m in messages)
    assert [m for m in messages if leaks(m)] == []
    # The whole text was there to be redacted: the key was replaced, not cut away.
    assert sum("***" in m for m in messages) > len(OFFSETS) // 2


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDREFLECTED0000042")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYREFLECTED")
    yield


@pytest.mark.usefixtures("aws_env")
async def test_sigv4_access_key_id_and_secret_are_redacted() -> None:
    """A Bedrock upstream echoing the SigV4 credentials (from the environment) leaks neither."""
    config = _config("bedrock").replace(f'api_key = "{KEY}"', 'region = "us-east-1"')

    async def reflect(request: httpx.Request) -> httpx.Response:
        authorization = request.headers["authorization"]
        text = (
            f"The request signature we calculated does not match. {authorization} "
            "key AKIDREFLECTED0000042 secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYREFLECTED"
        )
        body = msgspec.json.encode({"message": text})
        headers = {"x-amzn-errortype": "InvalidSignatureException"}
        return httpx.Response(403, headers=headers, content=body)

    async with stack(config, {"d": reflect}) as s:
        with pytest.raises(AllAttemptsFailed) as info:
            await s.supervisor.complete(msgspec.convert(chat_json(), ChatCall))
    [attempt] = info.value.attempts
    message = attempt.message or ""
    assert "signature we calculated" in message
    assert leaks(message, "AKIDREFLECTED0000042") == []
    assert leaks(message, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYREFLECTED") == []


async def test_transport_exception_texts_are_redacted() -> None:
    """An exception text from the HTTP layer (a proxy echoing the key) is redacted too."""

    async def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(f"proxy said: bad header authorization: Bearer {KEY}")

    async with stack(_config("openai"), {"d": broken}) as s:
        with pytest.raises(AllAttemptsFailed) as info:
            await s.supervisor.complete(msgspec.convert(chat_json(), ChatCall))
    [attempt] = info.value.attempts
    assert (
        attempt.message == "RemoteProtocolError: proxy said: bad header authorization: Bearer ***"
    )
