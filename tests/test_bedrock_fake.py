"""`BedrockFake` rejects what Converse rejects, with its status, error type and message."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from actors.providers._bedrock_sigv4 import BedrockSigV4

from .fakes import BedrockFake, serve_app

pytestmark = pytest.mark.anyio

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
PATH = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
GOOD = Credentials("AKIDFAKEBEDROCK0000", "fake/secret/key")
SPEC = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}
VALID: dict[str, Any] = {
    "system": [{"text": "You are terse."}],
    "messages": [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"text": "Checking."}, {"toolUse": {
            "toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1",
            "content": [{"json": {"temp_c": 18}}], "status": "success"}}, {"text": "And Rome?"}]},
    ],
    "toolConfig": {"tools": [SPEC], "toolChoice": {"tool": {"name": "get_weather"}}},
    "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9,
                        "stopSequences": ["END"]},
}  # fmt: skip


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(BedrockFake(models=[MODEL], tool_choices=("auto", "tool"))) as url:
        auth = BedrockSigV4("us-east-1", GOOD)
        async with httpx.AsyncClient(base_url=url, auth=auth) as http:
            yield http


def changed(path: str, value: Any) -> dict[str, Any]:
    """VALID with the value at a dotted path (list indices as numbers) replaced or deleted."""
    body = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target: Any = body
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    key_or_index: Any = int(last) if last.isdigit() else last
    if value is _DELETE:
        del target[key_or_index]
    else:
        target[key_or_index] = value
    return body


_DELETE = object()


async def test_the_documented_example_is_accepted(client: httpx.AsyncClient) -> None:
    """PROVIDERS.md §4.2's request passes, and the answer has §4.6's required members."""
    response = await client.post(PATH, json=VALID)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) >= {"output", "stopReason", "usage", "metrics"}
    assert answer["stopReason"] == "tool_use"
    [block] = answer["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "get_weather"
    assert response.headers["x-amzn-requestid"]


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        pytest.param(changed("messages.1.role", "user"),
                     "A conversation must alternate between user and assistant roles.",
                     id="alternation"),
        pytest.param(changed("messages.0.role", "assistant"),
                     "A conversation must start with a user message", id="starts-with-user"),
        pytest.param(changed("toolConfig", _DELETE),
                     "The toolConfig field must be defined when using toolUse and toolResult",
                     id="tool-history-needs-toolConfig"),
        pytest.param(changed("messages.1.content.1.toolUse.toolUseId", "call abc"),
                     "Value 'call abc' at 'messages.2.member.content.2.member.toolUse.toolUseId'"
                     " failed to satisfy constraint: Member must satisfy regular expression"
                     " pattern: [a-zA-Z0-9_.:-]+", id="tool-use-id-pattern"),
        pytest.param(changed("messages.1.content.1.toolUse.toolUseId", "x" * 65),
                     "Member must have length less than or equal to 64", id="tool-use-id-length"),
        pytest.param(changed("messages.2.content.0.toolResult.toolUseId", "tooluse_2"),
                     "Expected toolResult blocks at messages.2.content for the following Ids:"
                     " tooluse_1", id="unanswered-tool-use"),
        pytest.param(changed("messages.2.content.1", {"toolResult": {
                         "toolUseId": "tooluse_1", "content": [{"text": "again"}]}}),
                     "exceeds the number of toolUse blocks of previous turn",
                     id="more-results-than-uses"),
        pytest.param(changed("frequency_penalty", 0.5), "Unknown member 'frequency_penalty'",
                     id="unknown-top-level-member"),
        pytest.param(changed("inferenceConfig.top_k", 5),
                     "Unknown member 'top_k' at 'inferenceConfig'", id="unknown-nested-member"),
        pytest.param(changed("inferenceConfig.temperature", 1.5),
                     "Member must have value less than or equal to 1", id="temperature-range"),
        pytest.param(changed("messages.2.content.1.text", "  "),
                     "The text field in the ContentBlock object at messages.2.content.1 is blank",
                     id="blank-text"),
        pytest.param(changed("messages.0.content.0", {"text": "a", "toolUse": {
                         "toolUseId": "t", "name": "n", "input": {}}}),
                     "Member must have exactly one field set", id="content-block-union"),
        pytest.param(changed("toolConfig.tools.0.toolSpec.name", "get weather"),
                     "pattern: [a-zA-Z0-9_-]+", id="tool-name-pattern"),
        pytest.param(changed("toolConfig.toolChoice", {"any": {}}),
                     "This model doesn't support the toolConfig.toolChoice.any field.",
                     id="model-without-tool-choice-any"),
    ],
)  # fmt: skip
async def test_validation_exceptions(
    client: httpx.AsyncClient, body: dict[str, Any], phrase: str
) -> None:
    """Shape and conversation errors are 400 ValidationException with AWS's error headers."""
    response = await client.post(PATH, json=body)
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"].startswith("ValidationException:http")
    assert phrase in response.json()["message"]


def aws_headers(
    credentials: Any, service: str = "bedrock", region: str = "us-east-1"
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=f"http://127.0.0.1{PATH}", data=b"{}",
                         headers={"content-type": "application/json"})  # fmt: skip
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        pytest.param({}, 403, "MissingAuthenticationTokenException", id="unsigned"),
        pytest.param({"authorization": "Bearer nope"}, 403, "UnrecognizedClientException",
                     id="bearer-without-api-key"),
        pytest.param("secret", 403, "InvalidSignatureException", id="wrong-secret"),
        pytest.param("bedrock-runtime", 403, "InvalidSignatureException",
                     id="signing-name-bedrock-runtime"),
        pytest.param("eu-west-1", 403, "InvalidSignatureException", id="wrong-region"),
        pytest.param("key", 403, "UnrecognizedClientException", id="unknown-access-key"),
    ],
)  # fmt: skip
async def test_auth_rejections(headers: Any, status: int, error_type: str) -> None:
    """Unsigned, mis-scoped or mis-signed requests are refused as AWS refuses them."""
    fake = BedrockFake(models=[MODEL])
    if headers == "secret":
        headers = aws_headers(Credentials(GOOD.access_key, "wrong"))
    elif headers == "key":
        headers = aws_headers(Credentials("AKIDOTHER", GOOD.secret_key))
    elif headers == "bedrock-runtime":
        headers = aws_headers(GOOD, service="bedrock-runtime")
    elif headers == "eu-west-1":
        headers = aws_headers(GOOD, region="eu-west-1")
    async with serve_app(fake) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.post(PATH, content=b"{}", headers=headers)
    assert response.status_code == status
    assert response.headers["x-amzn-errortype"].split(":")[0] == error_type
    assert fake.statistics().scripted == 0 and fake.requests[0].status == status


@pytest.mark.parametrize(
    ("path", "content", "status", "error_type"),
    [
        pytest.param("/model/m/invoke", b"{}", 404, "UnknownOperationException", id="route"),
        pytest.param("/model/unknown-model/converse", b"{}", 400, "ValidationException",
                     id="unknown-model"),
        pytest.param(PATH, b"{not json", 400, "SerializationException", id="not-json"),
        pytest.param(PATH, b'{"messages": "hi"}', 400, "SerializationException", id="wrong-type"),
    ],
)  # fmt: skip
async def test_route_model_and_payload(
    client: httpx.AsyncClient, path: str, content: bytes, status: int, error_type: str
) -> None:
    """Unknown operations, unknown models and unreadable bodies are refused."""
    response = await client.post(
        path, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.headers["x-amzn-errortype"].split(":")[0] == error_type
