"""`BedrockFake`: a strict Bedrock Runtime `Converse` and `ConverseStream` (PROVIDERS.md §4),
and its error builders."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Final

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ._asgi import Receive, Reply, Scope, Send, json_reply
from ._base import FakeProvider
from ._bedrock_models import converse_model_problem
from ._bedrock_rules import check_converse
from ._bedrock_stream import EVENT_STREAM, converse_stream_frames
from ._chat_reply import _example, plan_turn
from ._claude_models import sign_thinking, thinking_on
from ._recording import RecordedRequest
from ._script import Error, Success, error

_PATH: Final = re.compile(r"^/model/(?P<model>.+)/(?P<operation>converse|converse-stream)$")
_CREDENTIAL: Final = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_RAW_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("bedrock_raw_path", default="")
ERROR_STATUS: Final[Mapping[str, int]] = {
    "ValidationException": 400, "SerializationException": 400,
    "ServiceQuotaExceededException": 400, "AccessDeniedException": 403,
    "UnrecognizedClientException": 403, "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403, "MissingAuthenticationTokenException": 403,
    "ResourceNotFoundException": 404, "UnknownOperationException": 404,
    "ModelTimeoutException": 408, "ModelErrorException": 424, "ThrottlingException": 429,
    "ModelNotReadyException": 429, "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}  # fmt: skip
"""HTTP status of each Bedrock exception (service-2.json `error.httpStatusCode`)."""
_BAD_SIGNATURE: Final = (
    "The request signature we calculated does not match the signature you provided. Check your"
    " AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class BedrockFake(FakeProvider):
    """Strict fake of Bedrock Runtime `POST /model/{modelId}/converse` (and `/converse-stream`).

        fake = BedrockFake(models=["anthropic.claude-3-5-haiku-20241022-v1:0"])
        async with serve_app(fake) as url:  # deployment api_base = url, region = fake.region

    Checks, in order: route (404 UnknownOperationException); auth (403): either
    `Authorization: Bearer <api_key>` (when `api_key` is set) or a SigV4 header
    `AWS4-HMAC-SHA256 Credential=<access_key>/<date>/<region>/bedrock/aws4_request, ...`
    with `X-Amz-Date`, whose signature is recomputed with botocore from the secret key
    (the path is re-encoded from the decoded model id, as AWS canonicalises it); a JSON
    object body (400 SerializationException); a known model id (400 ValidationException
    "The provided model identifier is invalid."); then `check_converse`: botocore's
    service model and the conversation rules (400 ValidationException). Every error
    carries `x-amzn-ErrorType` and `x-amzn-RequestId`, with the body `{"message": ...}`.

    Accepted requests consume one directive. The default reply says `"<name>: <last user
    text>"`, or calls the tool `toolChoice` forces (`any`: the first tool). A `Success`
    directive's `finish_reason` is taken as the Converse `stopReason` (`tool_calls` and
    `stop` are mapped to `tool_use` and `end_turn`). On `/converse-stream` the same reply
    comes as AWS event-stream frames (`converse_stream_frames`); script failures with
    `bedrock_stream(...)` and the frame builders of `_bedrock_stream`.

    Model rules follow the URL's model (`converse_model_problem`: Claude's output limit,
    sampling and thinking rules). A Claude model thinks when
    `additionalModelRequestFields.thinking` is on (a signed reasoningContent block first),
    an `outputConfig.textFormat` is answered with JSON of its schema, and the prompt prefix
    up to the last cachePoint is written once (`cacheWriteInputTokens`), then read.
    """

    def __init__(
        self,
        *,
        models: Iterable[str] = ("anthropic.claude-3-5-haiku-20241022-v1:0",),
        region: str = "us-east-1",
        access_key: str = "AKIDFAKEBEDROCK0000",
        secret_key: str = "fake/secret/key",
        api_key: str | None = None,
        name: str = "bedrock",
        tool_choices: Iterable[str] = ("auto", "any", "tool"),
    ) -> None:
        super().__init__(name=name)
        self.models = frozenset(models)
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.api_key = api_key
        self.tool_choices = tuple(tool_choices)
        self._raw_paths: dict[RecordedRequest, str] = {}
        self._served = 0
        self._cached: set[str] = set()  # digests of prompt prefixes written to the cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or scope.get("path", "").encode()
        token = _RAW_PATH.set(raw.decode("latin-1") if scope["type"] == "http" else "")
        try:
            await super().__call__(scope, receive, send)
        finally:
            _RAW_PATH.reset(token)

    def raw_path(self, record: RecordedRequest) -> str:
        """The request path exactly as sent, percent-encoding included."""
        return self._raw_paths[record]

    def _check(self, record: RecordedRequest) -> Reply | None:
        self._raw_paths[record] = _RAW_PATH.get()
        match = _PATH.match(record.path)
        if record.method != "POST" or match is None:
            return bedrock_reply("UnknownOperationException", "Unknown operation")  # [UNVERIFIED]
        denied = self._auth_problem(record, match["model"])
        if denied is not None:
            return denied
        media_type = record.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json" or not isinstance(record.json, dict):
            return bedrock_reply("SerializationException", "Unexpected payload")  # [UNVERIFIED]
        if match["model"] not in self.models:
            return bedrock_reply("ValidationException", "The provided model identifier is invalid.")
        rejection = check_converse(record.json, tool_choices=self.tool_choices)
        if rejection is not None:
            return bedrock_reply(rejection.error_type, rejection.message)
        problem = converse_model_problem(match["model"], record.json)
        if problem is not None:
            return bedrock_reply("ValidationException", problem)
        return None

    def _auth_problem(self, record: RecordedRequest, model_id: str) -> Reply | None:
        authorization = record.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            if self.api_key is not None and authorization[7:] == self.api_key:
                return None
            return bedrock_reply(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )  # [UNVERIFIED for API keys]
        if not authorization:
            return bedrock_reply(
                "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        fields = _CREDENTIAL.match(authorization)
        if fields is None:
            return bedrock_reply(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
            )
        if "x-amz-date" not in record.headers:
            return bedrock_reply(
                "IncompleteSignatureException",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date'"
                " header.",
            )
        if fields["service"] != "bedrock":
            return bedrock_reply(
                "InvalidSignatureException",
                "Credential should be scoped to correct service: 'bedrock'.",
            )
        if fields["region"] != self.region:
            return bedrock_reply(
                "InvalidSignatureException", "Credential should be scoped to a valid region."
            )
        if fields["key"] != self.access_key:
            return bedrock_reply(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        operation = record.path.rsplit("/", 1)[-1]
        signature = self._signature(record, model_id, operation, fields.groupdict())
        if not hmac.compare_digest(signature, fields["signature"]):
            return bedrock_reply("InvalidSignatureException", _BAD_SIGNATURE)
        return None

    def _signature(
        self, record: RecordedRequest, model_id: str, operation: str, fields: Mapping[str, str]
    ) -> str:
        """The signature AWS computes: over the path re-encoded from the decoded model id."""
        signed = fields["signed"].split(";")
        headers = {name: record.headers.get(name, "") for name in signed}
        path = f"/model/{urllib.parse.quote(model_id, safe='')}/{operation}"
        request = AWSRequest(
            method=record.method, url=f"http://{record.headers.get('host', '')}{path}",
            data=record.body, headers=headers,
        )  # fmt: skip
        request.context["timestamp"] = record.headers["x-amz-date"]
        token = record.headers.get("x-amz-security-token")
        signer = SigV4Auth(
            Credentials(self.access_key, self.secret_key, token), "bedrock", self.region
        )
        canonical = signer.canonical_request(request)
        return str(signer.signature(signer.string_to_sign(request, canonical), request))

    def _answer(self, record: RecordedRequest, directive: Success) -> Reply:
        self._served += 1
        body: Mapping[str, Any] = record.json
        turn = plan_turn(_openai_view(body), directive, speaker=self.name, named_choice_stop=False)
        text_format = (body.get("outputConfig") or {}).get("textFormat")
        if text_format is not None and not turn.tool_calls and directive.content is None:
            schema = json.loads(text_format["structure"]["jsonSchema"]["schema"])
            turn = replace(turn, content=json.dumps(_example(schema)))
        content: list[dict[str, Any]] = []
        thought = None
        if thinking_on((body.get("additionalModelRequestFields") or {}).get("thinking")):
            asked = _openai_view(body)["messages"]
            thought = f"{self.name} thinks about: {asked[-1]['content'] if asked else ''}"
            reasoning = {"text": thought, "signature": sign_thinking(thought)}
            content.append({"reasoningContent": {"reasoningText": reasoning}})
        if turn.content:
            content.append({"text": turn.content})
        for call_id, name, arguments in turn.tool_calls:
            tool_use_id = "tooluse_" + _alnum(call_id, 22)
            content.append(
                {
                    "toolUse": {
                        "toolUseId": tool_use_id,
                        "name": name,
                        "input": json.loads(arguments),
                    }
                }
            )
        stop = {"tool_calls": "tool_use", "stop": "end_turn", "length": "max_tokens"}
        said = (turn.content or "") + "".join(arguments for _, _, arguments in turn.tool_calls)
        prompt, completion = max(1, len(record.body) // 4), max(1, len(said) // 4)
        stop_reason = stop.get(turn.finish_reason, turn.finish_reason)
        read = written = 0
        prefix = _cached_prefix(record.path, body)
        if prefix is not None:
            digest, size = prefix
            if digest in self._cached:
                read = min(size, prompt)
            else:
                written = min(size, prompt)
                self._cached.add(digest)
        usage = {"inputTokens": prompt - read - written, "outputTokens": completion,
                 "totalTokens": prompt + completion, "cacheReadInputTokens": read,
                 "cacheWriteInputTokens": written}  # fmt: skip
        headers = (("x-amzn-requestid", _request_id(self.name, self._served)), *directive.headers)
        if record.path.endswith("/converse-stream"):
            ids = [block["toolUse"]["toolUseId"] for block in content if "toolUse" in block]
            calls = tuple((i, n, a) for i, (_, n, a) in zip(ids, turn.tool_calls, strict=True))
            frames = converse_stream_frames(
                replace(turn, tool_calls=calls), stop_reason, usage, thought=thought
            )
            return Reply(status=200, headers=headers, chunks=frames, content_type=EVENT_STREAM)
        reply = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason, "usage": usage, "metrics": {"latencyMs": 1},
        }  # fmt: skip
        return json_reply(200, reply, headers)


def bedrock_reply(error_type: str, message: str, status: int | None = None) -> Reply:
    """A Bedrock error answer: status, `x-amzn-ErrorType`, `x-amzn-RequestId`, `{"message"}`."""
    return json_reply(
        status or ERROR_STATUS.get(error_type, 400),
        {"message": message},
        _error_headers(error_type, message),
    )


def bedrock_error(
    error_type: str,
    message: str,
    *,
    status: int | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Error:
    """A scripted Bedrock error (§4.5): `bedrock_error("ModelTimeoutException", "...")`."""
    return error(
        status or ERROR_STATUS.get(error_type, 400),
        {"message": message, **(extra or {})},
        {**dict(_error_headers(error_type, message)), **(headers or {})},
    )


def bedrock_throttled(
    message: str = "Too many requests, please wait before trying again.",
) -> Error:
    """Bedrock's 429 ThrottlingException [OBS]; no retry header is documented."""
    return bedrock_error("ThrottlingException", message)


def bedrock_input_too_long() -> Error:
    """Bedrock's context overflow: ValidationException "Input is too long..." [OBS]."""
    return bedrock_error("ValidationException", "Input is too long for requested model.")


def _error_headers(error_type: str, message: str) -> tuple[tuple[str, str], ...]:
    return (
        ("x-amzn-errortype", f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        ("x-amzn-requestid", _request_id(error_type, len(message))),
    )


def _cached_prefix(path: str, body: Mapping[str, Any]) -> tuple[str, int] | None:
    """`(digest, tokens)` of the prompt up to its last cachePoint block, or None."""
    sequence: list[Any] = [*((body.get("toolConfig") or {}).get("tools") or ())]
    sequence += body.get("system") or []
    for message in body["messages"]:
        sequence += message["content"]
    marks = [i for i, item in enumerate(sequence) if "cachePoint" in item]
    if not marks:
        return None
    prefix = json.dumps([path, sequence[: marks[-1]]], sort_keys=True)
    return hashlib.sha256(prefix.encode()).hexdigest(), max(1, len(prefix) // 4)


def _openai_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Converse body as the OpenAI-shaped view `plan_turn` reads."""
    messages = [
        {"role": "user", "content": block["text"]}
        for message in body["messages"] if message["role"] == "user"
        for block in message["content"] if "text" in block
    ]  # fmt: skip
    view: dict[str, Any] = {"messages": messages[-1:]}
    config = body.get("toolConfig")
    if config is not None:
        specs = [tool["toolSpec"] for tool in config["tools"] if "toolSpec" in tool]
        view["tools"] = [
            {"type": "function", "function": {"name": s["name"],
                                              "parameters": s["inputSchema"].get("json", {})}}
            for s in specs
        ]  # fmt: skip
        choice = config.get("toolChoice") or {"auto": {}}
        if "tool" in choice:
            view["tool_choice"] = {"type": "function", "function": {"name": choice["tool"]["name"]}}
        else:
            view["tool_choice"] = "required" if "any" in choice else "auto"
    return view


def _alnum(seed: str, length: int) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return "".join(c.upper() if int(c, 16) % 2 and c.isalpha() else c for c in digest)[:length]


def _request_id(name: str, serial: int) -> str:
    digest = hashlib.sha256(f"{name}:{serial}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
