"""The OpenAI-family adapter: URLs, auth, body allow-list and error classification."""

from __future__ import annotations

import msgspec
import pytest

from actors import ErrorClass, request_decoder
from actors.providers import OpenAIAdapter, classify_openai_error
from config import parse_config

REQUEST = request_decoder.decode(
    b'{"model": "group-name", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}'
)


def adapter(provider: str, *extra: str) -> OpenAIAdapter:
    text = "\n".join(
        [
            "[[deployment]]",
            'name = "d"',
            'group = "g"',
            f'provider = "{provider}"',
            'model = "dep-model"',
            'api_key = "sk-abc"',
            *extra,
        ]
    )
    return OpenAIAdapter(parse_config(text).deployment[0])


@pytest.mark.parametrize(
    ("provider", "extra", "url", "auth"),
    [
        pytest.param(
            "openai",
            (),
            "https://api.openai.com/v1/chat/completions",
            ("authorization", "Bearer sk-abc"),
            id="openai",
        ),
        pytest.param(
            "openai-compatible",
            ('api_base = "http://vllm:8000/v1/"',),
            "http://vllm:8000/v1/chat/completions",
            ("authorization", "Bearer sk-abc"),
            id="compatible",
        ),
        pytest.param(
            "azure",
            ('api_base = "https://r.openai.azure.com"', 'api_version = "2024-10-21"'),
            "https://r.openai.azure.com/openai/deployments/dep-model/chat/completions"
            "?api-version=2024-10-21",
            ("api-key", "sk-abc"),
            id="azure-deployments",
        ),
        pytest.param(
            "azure",
            ('api_base = "https://r.openai.azure.com/"',),
            "https://r.openai.azure.com/openai/v1/chat/completions",
            ("api-key", "sk-abc"),
            id="azure-v1",
        ),
    ],
)
def test_url_and_auth(
    provider: str, extra: tuple[str, ...], url: str, auth: tuple[str, str]
) -> None:
    """Each provider form gets its documented URL and auth header."""
    request = adapter(provider, *extra).build(REQUEST)
    assert request.url == url
    assert request.headers[auth[0]] == auth[1]


def test_body_is_the_request_with_the_deployment_model() -> None:
    """The body is the allow-listed request with `model` replaced, nothing added."""
    body = msgspec.json.decode(adapter("openai").build(REQUEST).body)
    assert body == {
        "model": "dep-model",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
    }


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "retryable", "retry_after"),
    [
        pytest.param(
            429,
            b'{"error":{"message":"slow down","code":"rate_limit_exceeded"}}',
            {"retry-after-ms": "1500"},
            ErrorClass.RATE_LIMITED,
            True,
            1.5,
            id="rate-limit-ms",
        ),
        pytest.param(
            429,
            b'{"error":{"message":"quota","code":"insufficient_quota"}}',
            {},
            ErrorClass.RATE_LIMITED,
            False,
            None,
            id="quota-not-retried",
        ),
        pytest.param(
            429,
            b'{"error":{"code":"429","message":"Please retry after 7 seconds."}}',
            {"retry-after": "7"},
            ErrorClass.RATE_LIMITED,
            True,
            7.0,
            id="azure-429",
        ),
        pytest.param(
            400,
            b'{"error":{"message":"too long","code":"context_length_exceeded"}}',
            {},
            ErrorClass.CONTEXT_WINDOW_EXCEEDED,
            False,
            None,
            id="context-window",
        ),
        pytest.param(
            400,
            b'{"error":{"message":"filtered","code":"content_filter","param":"prompt"}}',
            {},
            ErrorClass.CONTENT_POLICY,
            False,
            None,
            id="azure-content-filter",
        ),
        pytest.param(
            400,
            b'{"error":{"message":"Unknown parameter","code":"unknown_parameter"}}',
            {},
            ErrorClass.BAD_REQUEST,
            False,
            None,
            id="bad-request",
        ),
        pytest.param(
            401, b'{"error":{"message":"bad key"}}', {}, ErrorClass.AUTH, False, None, id="auth"
        ),
        pytest.param(
            404, b"not json", {}, ErrorClass.NOT_FOUND, False, None, id="not-found-garbage"
        ),
        pytest.param(408, b"", {}, ErrorClass.TIMEOUT, True, None, id="timeout"),
        pytest.param(
            500, b'{"error":"internal"}', {}, ErrorClass.SERVER_ERROR, True, None, id="500"
        ),
        pytest.param(
            503,
            b"",
            {"x-should-retry": "false"},
            ErrorClass.OVERLOADED,
            False,
            None,
            id="should-not-retry",
        ),
        pytest.param(529, b"", {}, ErrorClass.OVERLOADED, True, None, id="529"),
        pytest.param(418, b"", {}, ErrorClass.BAD_REQUEST, False, None, id="other-4xx"),
        pytest.param(599, b"", {}, ErrorClass.SERVER_ERROR, True, None, id="other-5xx"),
    ],
)
def test_classification(
    status: int,
    body: bytes,
    headers: dict[str, str],
    error: ErrorClass,
    retryable: bool,
    retry_after: float | None,
) -> None:
    """Status and error.code decide the class; Retry-After headers are read."""
    exc = classify_openai_error(status, headers, body)
    assert (exc.error, exc.retryable, exc.retry_after, exc.status) == (
        error,
        retryable,
        retry_after,
        status,
    )


@pytest.mark.parametrize(
    ("provider", "extra", "asked"),
    [
        pytest.param("openai", (), True, id="openai-asks-for-usage"),
        pytest.param("openai-compatible", ('api_base = "http://vllm:8000/v1"',), False,
                     id="compatible-left-alone"),
    ],
)  # fmt: skip
def test_streamed_usage_is_requested_from_openai(
    provider: str, extra: tuple[str, ...], asked: bool
) -> None:
    """OpenAI streams are asked for their usage chunk (metrics); other servers are not."""
    streamed = msgspec.structs.replace(REQUEST, stream=True)
    body = msgspec.json.decode(adapter(provider, *extra).build(streamed).body)
    assert ("stream_options" in body) is asked
    if asked:
        assert body["stream_options"] == {"include_usage": True}
