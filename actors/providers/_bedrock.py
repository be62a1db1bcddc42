"""AWS Bedrock Runtime Converse and ConverseStream (PROVIDERS.md §4): the adapter.

The request translation lives in `_converse`, request signing in `_bedrock_sigv4`,
the answers and error classes in `_bedrock_reply`, and the stream translation
(AWS event-stream frames to OpenAI chunks) in `_bedrock_stream`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Final

import httpx

from config import Deployment

from .._chat import ChatCompletion, ChatRequest, encoder
from .._exceptions import ProviderError
from ._base import HttpRequest, drop_params, unsupported_params
from ._bedrock_reply import classify_bedrock_error, parse_converse
from ._bedrock_sigv4 import BedrockSigV4
from ._bedrock_stream import ConverseStreamParser
from ._chat_parts import refuse_custom_tools
from ._converse import BEDROCK_TOOL_ID, check_tool_names, converse_body
from ._toolids import conform_tool_ids

BEDROCK_PARAMS: Final = frozenset(
    {"max_completion_tokens", "max_tokens", "stop", "stream", "temperature", "tool_choice"}
    | {"tools", "top_p"}
)
"""Optional request fields Converse can express (`stream` picks ConverseStream)."""
EVENT_STREAM: Final = "application/vnd.amazon.eventstream"
"""The media type of a ConverseStream answer (§4.1)."""


def converse_url(base: str, model_id: str, operation: str = "converse") -> str:
    """The Converse (or `converse-stream`) URL; `model_id` is one percent-encoded path segment,
    as botocore sends it."""
    return f"{base.rstrip('/')}/model/{urllib.parse.quote(model_id, safe='')}/{operation}"


def region_of(spec: Deployment) -> str:
    """The signing region: `region`, else the one in a `bedrock-runtime.{region}` api_base."""
    if spec.region:
        return spec.region
    host = urllib.parse.urlsplit(spec.api_base or "").hostname or ""
    match = re.match(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com", host)
    # A custom endpoint that names no region (a proxy, a fake) signs for us-east-1.
    return match.group(1) if match else "us-east-1"


class BedrockAdapter:
    """Bedrock Runtime Converse, signed with SigV4 or sent with a Bedrock API key."""

    __slots__ = (
        "_headers",
        "_model",
        "_name",
        "_stream_headers",
        "_stream_url",
        "_url",
        "auth",
        "supported_params",
    )

    def __init__(self, spec: Deployment) -> None:
        region = region_of(spec)
        base = spec.api_base or f"https://bedrock-runtime.{region}.amazonaws.com"
        self._name = spec.name
        self._model = spec.model
        self._url = converse_url(base, spec.model)
        self._stream_url = converse_url(base, spec.model, "converse-stream")
        self.supported_params = BEDROCK_PARAMS
        headers = {"content-type": "application/json", "accept": "application/json"}
        key = spec.api_key.reveal() if spec.api_key is not None else None
        self.auth: httpx.Auth | None = None
        if key:
            headers["authorization"] = f"Bearer {key}"  # a Bedrock API key
        else:
            self.auth = BedrockSigV4(region)
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        self._headers = headers
        self._stream_headers = {**headers, "accept": EVENT_STREAM}

    def build(self, request: ChatRequest) -> HttpRequest:
        dropped = unsupported_params(request, self.supported_params)
        request = conform_tool_ids(drop_params(request, dropped), BEDROCK_TOOL_ID)
        refuse_custom_tools(request, provider="bedrock", deployment=self._name)
        check_tool_names(request, self._name)
        streaming = request.stream is True
        return HttpRequest(
            method="POST",
            url=self._stream_url if streaming else self._url,
            headers=self._stream_headers if streaming else self._headers,
            body=encoder.encode(converse_body(request, self._name)),
            dropped_params=dropped,
        )

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ChatCompletion:
        return parse_converse(body, model=self._model, request_id=headers.get("x-amzn-requestid"))

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return classify_bedrock_error(status, headers, body)

    def stream_parser(self) -> ConverseStreamParser:
        """A fresh ConverseStream translator (botocore decodes the frames)."""
        return ConverseStreamParser(model=self._model)
