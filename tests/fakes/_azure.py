"""`AzureFake`: strict Azure OpenAI chat completions, both URL forms (PROVIDERS.md §2)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._asgi import Reply, json_reply
from ._base import FakeProvider
from ._chat_reply import Shape, message_text
from ._chat_rules import OPENAI_PARAMS, Dialect
from ._openai import chat_reply, check_json_body, completion_id
from ._recording import RecordedRequest
from ._script import Error, Success, error

_GA_2024_06_01: Final = frozenset({
    "messages", "model", "temperature", "top_p", "n", "stream", "stop", "max_tokens",
    "presence_penalty", "frequency_penalty", "logit_bias", "user", "logprobs", "top_logprobs",
    "response_format", "seed", "tools", "tool_choice", "functions", "function_call",
    "data_sources",
})  # fmt: skip
"""`createChatCompletionRequest` of Azure's `stable/2024-06-01/inference.json`."""
ADDED_IN: Final[Mapping[str, frozenset[str]]] = {
    "2024-07-01-preview": frozenset({"parallel_tool_calls"}),  # [UNVERIFIED version]
    "2024-08-01-preview": frozenset({"stream_options"}),  # works on 2024-10-21 [OBS griptape]
    "2024-09-01-preview": frozenset({"max_completion_tokens"}),  # in 2024-10-21's spec
    "2024-12-01-preview": frozenset({"store", "metadata", "reasoning_effort"}),  # its spec
    "2025-01-01-preview": frozenset({"modalities", "audio", "prediction"}),  # azure-sdk-for-go
}
"""Top-level fields each dated api-version added (Azure's specs and SDK changelogs)."""
DEVELOPER_ROLE_SINCE: Final = "2024-12-01-preview"


def azure_params(api_version: str | None) -> frozenset[str]:
    """The top-level fields an api-version takes; None is the v1 API (OpenAI's, plus
    `data_sources`)."""
    if api_version is None:
        return OPENAI_PARAMS | {"data_sources"}
    added = (names for since, names in ADDED_IN.items() if api_version >= since)
    return _GA_2024_06_01.union(*added)


def azure_dialect(api_version: str | None) -> Dialect:
    """Message-level rules of an api-version (the v1 API follows OpenAI's)."""
    if api_version is None:
        return Dialect()
    return Dialect(developer_role=api_version >= DEVELOPER_ROLE_SINCE,
                   prompt_cache_breakpoint=False)  # fmt: skip


AZURE_PARAMS: Final = azure_params("2024-10-21")
"""The allow-list of GA api-version 2024-10-21."""

_DEPLOYMENT_PATH: Final = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
V1_PATH: Final = "/openai/v1/chat/completions"
_DENIED: Final = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide"
    " a valid key for an active subscription and use a correct regional API endpoint for your"
    " resource."
)
_NO_DEPLOYMENT: Final = (
    "The API deployment for this resource does not exist. If you created the deployment within"
    " the last 5 minutes, please wait a moment and try again."
)
_FILTERED: Final = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management"
    " policy. Please modify your prompt and retry. To learn more about our content filtering"
    " policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_SAFE: Final[Mapping[str, Any]] = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


class AzureFake(FakeProvider):
    """Strict fake of Azure OpenAI chat completions, a raw ASGI app.

        fake = AzureFake(deployments={"gpt4o": "gpt-4o-2024-08-06"}, api_key="k")
        async with serve_app(fake) as url:  # AsyncAzureOpenAI(azure_endpoint=url, ...)

    Routes: `POST /openai/deployments/{dep}/chat/completions?api-version=V` (body `model`
    optional) and `POST /openai/v1/chat/completions` (`model` = deployment, required).
    Checks, in order: route (404), `api-key: <api_key>` or `Authorization: Bearer <api_key>`
    (401), api-version present (404 "Resource not found") and, if `api_versions` is given,
    listed (400), deployment known (404 `DeploymentNotFound`), the same body rules as
    `OpenAIFake` with the api-version's allow-list and roles (`azure_params`,
    `azure_dialect`; `accepted_params` overrides the list) (400 `unknown_parameter`...), then
    the content filter: a user message containing `content_filter_phrase` gets the 400
    `content_filter` body of §2.3.  Replies carry Azure's `prompt_filter_results` and
    per-choice `content_filter_results`; a stream starts with the empty-choices chunk (§2.5).
    `deployments` maps a deployment name to the model name replies report (an iterable of
    names reports the name itself).
    """

    def __init__(
        self,
        *,
        api_key: str = "azure-test-key",
        deployments: Mapping[str, str] | Iterable[str] = ("gpt-4o-mini",),
        name: str = "azure",
        api_versions: Iterable[str] | None = None,
        accepted_params: Iterable[str] | None = None,
        content_filter_phrase: str | None = None,
        named_choice_stop: bool = True,
    ) -> None:
        super().__init__(name=name)
        self.api_key = api_key
        self.deployments: dict[str, str] = (
            dict(deployments) if isinstance(deployments, Mapping)
            else {dep: dep for dep in deployments}
        )  # fmt: skip
        self.api_versions = None if api_versions is None else frozenset(api_versions)
        self.accepted_params = None if accepted_params is None else frozenset(accepted_params)
        self.content_filter_phrase = content_filter_phrase
        self.named_choice_stop = named_choice_stop
        self._served = 0

    def _check(self, record: RecordedRequest) -> Reply | None:
        match = _DEPLOYMENT_PATH.match(record.path)
        if record.method != "POST" or (match is None and record.path != V1_PATH):
            return _azure_error(404, "404", "Resource not found")
        if not self._authorized(record.headers):
            return _azure_error(401, "401", _DENIED)
        if match is not None:
            version = record.query.get("api-version")
            if not version:
                return _azure_error(404, "404", "Resource not found")
            if self.api_versions is not None and version not in self.api_versions:
                # [UNVERIFIED wording] for an api-version the resource does not serve.
                return _azure_error(400, "BadRequest", "API version not supported")
            if match.group(1) not in self.deployments:
                return _azure_error(404, "DeploymentNotFound", _NO_DEPLOYMENT)
        version = None if match is None else record.query.get("api-version")
        accepted = self.accepted_params or azure_params(version)
        rejection = check_json_body(
            record, accepted=accepted, require_model=match is None, dialect=azure_dialect(version)
        )
        if rejection is not None:
            return rejection
        if match is None and record.json["model"] not in self.deployments:
            return _azure_error(404, "DeploymentNotFound", _NO_DEPLOYMENT)
        if self._filtered(record.json["messages"]):
            return json_reply(400, azure_content_filter().body)
        return None

    def _answer(self, record: RecordedRequest, directive: Success) -> Reply:
        self._served += 1
        match = _DEPLOYMENT_PATH.match(record.path)
        deployment = match.group(1) if match is not None else record.json["model"]
        prompt_filter = [{"prompt_index": 0, "content_filter_results": dict(_SAFE)}]
        shape = Shape(
            model=self.deployments[deployment],
            completion_id=completion_id(self.name, self._served),
            created=int(time.time()),
            top_extra={"prompt_filter_results": prompt_filter},
            choice_extra={"content_filter_results": dict(_SAFE)},
            first_chunks=[{"choices": [], "created": 0, "id": "", "model": "", "object": "",
                           "prompt_filter_results": prompt_filter}],
        )  # fmt: skip
        headers = (
            ("apim-request-id", shape.completion_id[9:]),
            ("x-request-id", shape.completion_id[9:]),
            *directive.headers,
        )
        return chat_reply(record, directive, shape, headers, self.name, self.named_choice_stop)

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        bearer = headers.get("authorization", "")
        return headers.get("api-key") == self.api_key or bearer == f"Bearer {self.api_key}"

    def _filtered(self, messages: list[Any]) -> bool:
        phrase = self.content_filter_phrase
        return phrase is not None and any(
            message.get("role") == "user" and phrase in message_text(message)
            for message in messages
        )


def azure_rate_limited(
    *, retry_after: int | None = 7, retry_after_ms: int | None = None,
    api_version: str = "2024-10-21",
) -> Error:  # fmt: skip
    """Azure's 429 (§2.4): `code` is the string "429", no `type`; `retry-after` in seconds."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    message = (
        f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version"
        f" {api_version} have exceeded token rate limit of your current OpenAI S0 pricing tier."
        f" Please retry after {retry_after if retry_after is not None else 60} seconds. Please"
        " go here: https://aka.ms/oai/quotaincrease if you would like to further increase the"
        " default rate limit."
    )
    return error(429, {"error": {"code": "429", "message": message}}, headers)


def azure_content_filter() -> Error:
    """Azure's prompt-side content-filter 400 (§2.3), also what the filter phrase triggers."""
    results = {
        **_SAFE,
        "jailbreak": {"filtered": False, "detected": False},
        "violence": {"filtered": True, "severity": "medium"},
    }
    body = {
        "error": {
            "message": _FILTERED,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": results,
            },
        }
    }
    return error(400, body)


def _azure_error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message}})
