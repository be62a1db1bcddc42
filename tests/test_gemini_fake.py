"""`GeminiFake` rejects what generateContent rejects (§6.2-§6.4), in Google's RPC shape."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from .fakes import (
    GeminiFake,
    check_generate_request,
    gemini_prompt_blocked,
    gemini_rate_limited,
    gemini_unavailable,
    serve_app,
    success,
    thought_signature,
)
from .test_anthropic_fake import Edit, edit

pytestmark = pytest.mark.anyio

KEY = "gm-test-0123"
PATH = "/v1beta/models/gemini-2.5-flash:generateContent"
PATH3 = "/v1beta/models/gemini-3-pro-preview:generateContent"

# PROVIDERS.md §6.2, verbatim but for the signature: "<opaque b64, echo verbatim>" is no
# base64, which a bytes field must be.
EXAMPLE: dict[str, Any] = {
    "systemInstruction": {"parts": [{"text": "You are terse."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"id": "fc_1", "name": "get_weather",
                                                      "args": {"city": "Paris"}},
                                     "thoughtSignature": "Cq8BAXLI2nw="}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "fc_1", "name": "get_weather",
                                                         "response": {"temp_c": 18}}}]},
        {"role": "user", "parts": [{"text": "And Rome?"}]}],
    "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Get weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                             "allowedFunctionNames": ["get_weather"]}},
    "generationConfig": {"maxOutputTokens": 256, "temperature": 0.2, "topP": 0.9,
                         "stopSequences": ["END"], "candidateCount": 1},
}  # fmt: skip
_CALL = ("contents", 1, "parts", 0)
_ANSWER = ("contents", 2, "parts", 0, "functionResponse")


def edited(change: Edit) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    change(body)
    return body


@pytest.fixture
async def fake() -> AsyncIterator[tuple[GeminiFake, httpx.AsyncClient]]:
    provider = GeminiFake(api_key=KEY)
    async with serve_app(provider) as url:
        async with httpx.AsyncClient(base_url=url, headers={"x-goog-api-key": KEY}) as client:
            yield provider, client


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-pro-preview"])
def test_the_documented_example_is_valid(model: str) -> None:
    """PROVIDERS.md §6.2's request passes every rule, snake_case spellings too."""
    assert check_generate_request(EXAMPLE, model=model) is None
    snake = edited(edit(("generationConfig",), ..., edit(("generation_config",), {"top_p": 1})))
    assert check_generate_request(snake, model=model) is None


REJECTED = [
    pytest.param(edit(("frequency_penalty",), 0.5), PATH,
                 'Invalid JSON payload received. Unknown name "frequency_penalty": Cannot find'
                 " field.", id="unknown-top-level"),
    pytest.param(edit(("generationConfig", "response_mime_typo"), "x"), PATH,
                 'Unknown name "response_mime_typo" at \'generation_config\'', id="unknown-nested"),
    pytest.param(edit(("tools", 0, "functionDeclarations", 0, "parameters",
                       "additionalProperties"), False), PATH,
                 'Unknown name "additionalProperties" at'
                 " 'tools[0].function_declarations[0].parameters'", id="schema-extra"),
    pytest.param(edit(("contents",), []), PATH, "contents is not specified", id="no-contents"),
    pytest.param(edit(("contents", 0, "role"), "assistant"), PATH,
                 "Please use a valid role: user, model.", id="openai-role"),
    pytest.param(edit(("contents", 3, "parts"), []), PATH, "contents.parts must not be empty",
                 id="empty-parts"),
    pytest.param(edit((*_ANSWER, "response"), "18C"), PATH,
                 "Invalid value at 'contents[2].parts[0].function_response.response'"
                 " (type.googleapis.com/google.protobuf.Struct)", id="response-not-object"),
    pytest.param(edit(("contents", 0, "role"), "model"), PATH,
                 "Please ensure that function call turn comes immediately after a user turn or"
                 " after a function response turn.", id="call-after-call-turn"),
    pytest.param(edit(("contents", 1)), PATH,
                 "Please ensure that function response turn comes immediately after a function"
                 " call turn.", id="response-without-call"),
    pytest.param(edit(("contents", 2, "parts"), [{"functionResponse": {
                     "name": "get_weather", "response": {}}}] * 2), PATH,
                 "Please ensure that the number of function response parts is equal to the"
                 " number of function call parts of the function call turn.", id="count"),
    pytest.param(edit((*_ANSWER, "name"), "get_time"), PATH, "do not match", id="name-pairing"),
    pytest.param(edit((*_ANSWER, "id"), "fc_other"), PATH, "matches no function call id",
                 id="id-pairing"),
    pytest.param(edit((*_CALL, "thoughtSignature"), ..., edit(("contents", 3))), PATH3,
                 "Function call is missing a thought_signature in functionCall parts",
                 id="gemini-3-signature"),
    pytest.param(edit(("tools", 0, "functionDeclarations", 0, "name"), "get weather"), PATH,
                 "Invalid function name", id="function-name"),
    pytest.param(edit(("toolConfig", "functionCallingConfig", "mode"), "REQUIRED"), PATH,
                 "Invalid value at 'tool_config.function_calling_config.mode'", id="mode"),
    pytest.param(edit(("toolConfig", "functionCallingConfig", "allowedFunctionNames"), ["x"]),
                 PATH, "'x' is not a declared function", id="allowed-unknown"),
]  # fmt: skip


PATH25PRO = "/v1beta/models/gemini-2.5-pro:generateContent"
_GEN = ("generationConfig",)
_SIG = (*_CALL, "thoughtSignature")
_CURRENT = edit(("contents", 3))  # the call's turn becomes the current one
REJECTED += [
    pytest.param(
        edit((*_GEN, "thinkingConfig"), {"thinkingLevel": "LOW", "thinkingBudget": 9}),
        PATH3,
        "thinking_level and thinking_budget cannot both be set",
        id="level+budget",
    ),
    pytest.param(
        edit((*_GEN, "thinkingConfig"), {"thinkingLevel": "LOW"}),
        PATH,
        "Thinking level is not supported for this model",
        id="level-on-2.5",
    ),
    pytest.param(
        edit((*_GEN, "thinkingConfig"), {"thinkingLevel": "MEDIUM"}),
        PATH3,
        "Thinking level MEDIUM is not supported",
        id="medium-on-3-pro",
    ),
    pytest.param(
        edit((*_GEN, "thinkingConfig"), {"thinkingLevel": "deep"}),
        PATH3,
        "Invalid value at 'generation_config.thinking_config.thinking_level'",
        id="level-value",
    ),
    pytest.param(
        edit((*_GEN, "thinkingConfig"), {"thinkingBudget": 0}),
        PATH25PRO,
        "Budget 0 is invalid. This model only works in thinking mode.",
        id="2.5-pro-cannot-stop",
    ),
    pytest.param(
        edit((*_GEN, "thinkingConfig"), {"thinkingBudget": 99999}),
        PATH,
        "The thinking budget 99999 is invalid",
        id="budget-range",
    ),
    pytest.param(
        edit((*_GEN, "thinkingConfig"), {"effort": "low"}),
        PATH,
        "Unknown name \"effort\" at 'generation_config.thinking_config'",
        id="thinking-unknown-field",
    ),
    pytest.param(
        edit((*_GEN, "responseJsonSchema"), {"type": "object"}),
        PATH,
        "response_mime_type must be application/json",
        id="json-schema-needs-mime",
    ),
    pytest.param(
        edit((*_GEN, "responseMimeType"), "application/jsonl"),
        PATH,
        "allowed mimetypes are",
        id="mime-type",
    ),
    pytest.param(
        edit(
            (*_GEN, "responseJsonSchema"),
            {},
            edit((*_GEN, "responseSchema"), {}),
            edit((*_GEN, "responseMimeType"), "application/json"),
        ),
        PATH,
        "cannot both be set",
        id="two-schemas",
    ),
    pytest.param(
        edit((*_GEN, "logprobs"), 3),
        PATH,
        "logprobs is only valid if response_logprobs is true",
        id="logprobs-alone",
    ),
    pytest.param(
        edit((*_GEN, "logprobs"), 21, edit((*_GEN, "responseLogprobs"), True)),
        PATH,
        "logprobs must be in the range [0, 20]",
        id="logprobs-range",
    ),
    pytest.param(
        edit((*_GEN, "seed"), 2**31),
        PATH,
        "Invalid value at 'generation_config.seed' (TYPE_INT32)",
        id="seed-int32",
    ),
    pytest.param(
        edit(("serviceTier",), "scale"), PATH, "Invalid value at 'service_tier'", id="service-tier"
    ),
    pytest.param(
        edit(_SIG, "<opaque b64, echo verbatim>"),
        PATH,
        "(TYPE_BYTES), Base64 decoding failed",
        id="signature-not-base64",
    ),
    pytest.param(
        edit(_SIG, "c2lnbmF0dXJl", _CURRENT),
        PATH3,
        "Corrupted thought signature.",
        id="gemini-3-foreign-signature",
    ),
]


@pytest.mark.parametrize(
    ("change", "model"),
    [
        pytest.param(edit((*_GEN, "thinkingConfig"), {"thinkingLevel": "low",
                          "includeThoughts": True}), "gemini-3-pro-preview", id="level"),
        pytest.param(edit((*_GEN, "thinkingConfig"), {"thinkingBudget": 128}), "gemini-2.5-pro",
                     id="budget"),
        pytest.param(edit((*_GEN, "thinkingConfig"), {"thinkingBudget": -1}),
                     "gemini-3-pro-preview", id="dynamic-budget-on-3"),
        pytest.param(edit((*_GEN, "responseJsonSchema"), {"type": "object"},
                          edit((*_GEN, "responseMimeType"), "application/json")),
                     "gemini-2.5-flash", id="json-schema"),
        pytest.param(edit((*_GEN, "logprobs"), 0, edit((*_GEN, "responseLogprobs"), True)),
                     "gemini-2.5-flash", id="logprobs"),
        pytest.param(edit(("serviceTier",), "FLEX"), "gemini-2.5-flash", id="tier-upper"),
        pytest.param(edit(_SIG, "skip_thought_signature_validator", _CURRENT),
                     "gemini-3-pro-preview", id="dummy-signature"),
        pytest.param(edit(_SIG, "context_engineering_is_the_way_to_go", _CURRENT),
                     "gemini-3-pro-preview", id="other-dummy-signature"),
        pytest.param(edit(_SIG, thought_signature("gemini-3-pro-preview", "get_weather",
                                                  {"city": "Paris"}), _CURRENT),
                     "gemini-3-pro-preview", id="its-own-signature"),
    ],
)  # fmt: skip
def test_accepted_like_gemini(change: Edit, model: str) -> None:
    """What the real API takes for these fields, the fake takes too."""
    assert check_generate_request(edited(change), model=model) is None


@pytest.mark.parametrize(("change", "path", "message"), REJECTED)
async def test_rejects_like_gemini(
    fake: tuple[GeminiFake, httpx.AsyncClient], change: Edit, path: str, message: str
) -> None:
    """400 INVALID_ARGUMENT in the Google RPC shape; no directive is consumed."""
    provider, client = fake
    provider.script(gemini_unavailable())
    response = await client.post(path, json=edited(change))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert message in error["message"]
    assert provider.statistics().scripted == 1


async def test_signature_is_only_needed_in_the_current_turn() -> None:
    """Gemini 3 checks the calls after the last plain user turn, not older ones."""
    older = edited(edit((*_CALL, "thoughtSignature")))
    assert check_generate_request(older, model="gemini-3-pro-preview") is None
    current = edited(edit(("contents", 3)))
    del current["contents"][1]["parts"][0]["thoughtSignature"]
    assert check_generate_request(current, model="gemini-3-pro-preview") is not None


@pytest.mark.parametrize(
    ("path", "headers", "status", "fragment"),
    [
        pytest.param("/v1beta/models/gemini-2.5-flash:chat", {"x-goog-api-key": KEY}, 404,
                     "was not found", id="route"),
        pytest.param(PATH, {}, 403, "PERMISSION_DENIED", id="no-key"),
        pytest.param(PATH, {"x-goog-api-key": "nope"}, 400, "API_KEY_INVALID", id="wrong-key"),
        pytest.param(PATH + f"?key={KEY}", {}, 200, "candidates", id="key-in-query"),
    ],
)  # fmt: skip
async def test_route_and_key(
    path: str, headers: dict[str, str], status: int, fragment: str
) -> None:
    """A wrong route is an HTML 404; a missing key 403; a wrong key 400 API_KEY_INVALID."""
    provider = GeminiFake(api_key=KEY)
    async with serve_app(provider) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post(path, json=EXAMPLE, headers=headers)
    assert response.status_code == status
    assert fragment in response.text


async def test_default_answers(fake: tuple[GeminiFake, httpx.AsyncClient]) -> None:
    """Mode ANY calls the allowed function with schema-shaped args; otherwise text echoes."""
    _, client = fake
    forced = (await client.post(PATH, json=EXAMPLE)).json()
    [candidate] = forced["candidates"]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "fake"}}}
    ]
    plain = edited(edit(("toolConfig",), ..., edit(("generationConfig", "candidateCount"), 2)))
    answer = (await client.post(PATH, json=plain)).json()
    texts = [c["content"]["parts"] for c in answer["candidates"]]
    assert texts == [[{"text": "gemini: And Rome?"}]] * 2
    assert answer["usageMetadata"]["totalTokenCount"] > 0


async def test_gemini_3_answers_are_signed() -> None:
    """With `call_ids`, calls carry an id; Gemini 3 calls carry a thoughtSignature."""
    provider = GeminiFake(api_key=KEY, call_ids=True)
    async with serve_app(provider) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.post(PATH3, json=EXAMPLE, headers={"x-goog-api-key": KEY})
    [part] = answer.json()["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["id"].startswith("fc_")
    assert part["thoughtSignature"]


async def test_script_is_followed(fake: tuple[GeminiFake, httpx.AsyncClient]) -> None:
    """Directives answer in order: a 429 with RetryInfo, a blocked prompt, a SAFETY stop."""
    provider, client = fake
    provider.script(
        gemini_rate_limited(retry_delay="12s"),
        gemini_prompt_blocked("PROHIBITED_CONTENT"),
        success(content="...", finish_reason="SAFETY"),
    )
    with anyio.fail_after(10):
        limited = await client.post(PATH, json=EXAMPLE)
        blocked = await client.post(PATH, json=EXAMPLE)
        filtered = await client.post(PATH, json=EXAMPLE)
    assert limited.status_code == 429
    details = limited.json()["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"} in details
    assert blocked.status_code == 200
    assert blocked.json()["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"}
    assert filtered.json()["candidates"][0]["finishReason"] == "SAFETY"
