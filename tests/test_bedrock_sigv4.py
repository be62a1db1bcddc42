"""SigV4 signing for Bedrock: botocore signs, with credentials from its standard chain."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from actors import ErrorClass, ProviderError
from actors.providers._bedrock_sigv4 import BedrockSigV4

pytestmark = pytest.mark.anyio

URL = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/m%3A0/converse"
BODY = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=AKIDTEST/\d{8}/eu-west-1/bedrock/aws4_request, "
    r"SignedHeaders=content-type;host;x-amz-date(;x-amz-security-token)?, Signature=[0-9a-f]{64}"
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No ambient AWS configuration: no AWS_* variables, no files, no instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield monkeypatch


def signed(auth: httpx.Auth) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        client.post(URL, content=BODY, headers={"content-type": "application/json"}, auth=auth)
    return seen[0]


def expected_signature(request: httpx.Request, secret: str, token: str | None) -> str:
    """botocore's signature of the request as sent, for the date it carries."""
    signed_names = re.search(r"SignedHeaders=([^,]+)", request.headers["authorization"])
    assert signed_names is not None
    headers = {name: request.headers[name] for name in signed_names[1].split(";")}
    aws = AWSRequest(method="POST", url=str(request.url), data=request.content, headers=headers)
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = SigV4Auth(Credentials("AKIDTEST", secret, token), "bedrock", "eu-west-1")
    return str(signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws))


def test_signs_with_credentials_from_the_environment(aws_env: pytest.MonkeyPatch) -> None:
    """Env credentials, resolved lazily; the signature is botocore's over the encoded path."""
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "test/secret")
    aws_env.setenv("AWS_SESSION_TOKEN", "session-token")
    auth = BedrockSigV4("eu-west-1")
    assert "unresolved" in repr(auth)
    request = signed(auth)
    assert "Credentials" in repr(auth)
    assert AUTHORIZATION.fullmatch(request.headers["authorization"])
    assert re.fullmatch(r"\d{8}T\d{6}Z", request.headers["x-amz-date"])
    assert request.headers["x-amz-security-token"] == "session-token"
    signature = request.headers["authorization"].rsplit("Signature=", 1)[1]
    assert signature == expected_signature(request, "test/secret", "session-token")


async def test_async_flow_signs_too(aws_env: pytest.MonkeyPatch) -> None:
    """The async flow (the actor's) resolves credentials off the event loop and signs."""
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "test/secret")
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        auth = BedrockSigV4("eu-west-1")
        for _ in range(2):  # the second request reuses the resolved credentials
            await client.post(URL, content=BODY, headers={"content-type": "application/json"},
                              auth=auth)  # fmt: skip
    for request in seen:
        assert AUTHORIZATION.fullmatch(request.headers["authorization"])
        assert "x-amz-security-token" not in request.headers
        signature = request.headers["authorization"].rsplit("Signature=", 1)[1]
        assert signature == expected_signature(request, "test/secret", None)


def test_injected_credentials_are_used(aws_env: pytest.MonkeyPatch) -> None:
    """Credentials given to the constructor skip the chain."""
    request = signed(BedrockSigV4("eu-west-1", Credentials("AKIDTEST", "other/secret")))
    signature = request.headers["authorization"].rsplit("Signature=", 1)[1]
    assert signature == expected_signature(request, "other/secret", None)


def test_no_credentials_is_an_auth_error(aws_env: pytest.MonkeyPatch) -> None:
    """With nothing in the chain, the attempt fails as `auth`, saying what to configure."""
    with pytest.raises(ProviderError) as caught:
        signed(BedrockSigV4("eu-west-1"))
    assert caught.value.error is ErrorClass.AUTH
    assert "no AWS credentials" in caught.value.message
    assert "api_key" in caught.value.message


def test_missing_botocore_is_an_auth_error(aws_env: pytest.MonkeyPatch) -> None:
    """Without the optional extra, signing fails clearly instead of the daemon not starting."""
    aws_env.setitem(sys.modules, "botocore.auth", None)
    with pytest.raises(ProviderError) as caught:
        signed(BedrockSigV4("eu-west-1", Credentials("AKIDTEST", "s")))
    assert caught.value.error is ErrorClass.AUTH
    assert "pip install 'llm-dispatcher[bedrock]'" in caught.value.message
