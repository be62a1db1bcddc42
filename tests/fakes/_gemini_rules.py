"""Strict validation of a Gemini generateContent body (PROVIDERS.md §6.2-§6.4).

`check_generate_request(body, model=...)` returns `None` for a body the real API would
accept, or a `GeminiInvalid` carrying the 400 INVALID_ARGUMENT it would answer.  Field
names follow proto-JSON: lowerCamelCase or snake_case are both accepted, anything else is
`Invalid JSON payload received. Unknown name "X"...: Cannot find field.` [OBS].  The
turn-structure and thought-signature wordings are [OBS]; the rest follows Google's
`* GenerateContentRequest.<path>: ...` style and tests should match a stable piece.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

_TOP: Final = frozenset({
    "model", "contents", "tools", "toolConfig", "safetySettings", "systemInstruction",
    "generationConfig", "cachedContent", "serviceTier",
})  # fmt: skip
_CONTENT: Final = frozenset({"role", "parts"})
_DATA: Final = ("text", "inlineData", "fileData", "functionCall", "functionResponse",
                "executableCode", "codeExecutionResult")  # fmt: skip
_PART: Final = frozenset(
    {*_DATA, "thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}
)
_INNER: Final[Mapping[str, frozenset[str]]] = {
    "inlineData": frozenset({"mimeType", "data"}),
    "fileData": frozenset({"mimeType", "fileUri"}),
    "functionCall": frozenset({"id", "name", "args"}),
    "functionResponse": frozenset(
        {"id", "name", "response", "willContinue", "scheduling", "parts"}
    ),
}
_TOOL: Final = frozenset({
    "functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution",
    "urlContext", "fileSearch", "computerUse", "googleMaps",
})  # fmt: skip
_DECLARATION: Final = frozenset({
    "name", "description", "parameters", "parametersJsonSchema", "response",
    "responseJsonSchema", "behavior",
})  # fmt: skip
_SCHEMA: Final = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})  # fmt: skip
_TYPES: Final = frozenset(
    {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
)
_GENERATION: Final = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK",
    "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
    "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig", "imageConfig",
    "mediaResolution",
})  # fmt: skip
_MODES: Final = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
_TIERS: Final = frozenset({"unspecified", "standard", "flex", "priority"})
"""`serviceTier`, in either case (google-genai's own tests send "FLEX" and "flex")."""
_THINKING: Final = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
_LEVELS: Final = frozenset({"THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"})
_MIME_TYPES: Final = frozenset(
    {"text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum"}
)
_DUMMY_SIGNATURES: Final = frozenset(
    {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}
)
"""The signatures Google documents for calls Gemini did not make (thought-signatures docs)."""
_VERSION: Final = re.compile(r"gemini-(\d+)(?:\.(\d+))?-")
NAME_RULE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}")
_REQ: Final = "* GenerateContentRequest."


@dataclass(frozen=True)
class GeminiInvalid:
    """Why the request is rejected: the message of Google's 400 INVALID_ARGUMENT."""

    message: str
    field: str = ""

    def body(self) -> dict[str, Any]:
        """The Google RPC error body, with a `BadRequest` field violation."""
        violation = {"field": self.field, "description": self.message}
        details = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [violation]}]  # fmt: skip
        return {"error": {"code": 400, "message": self.message,
                          "status": "INVALID_ARGUMENT", "details": details}}  # fmt: skip


class _Reject(Exception):
    def __init__(self, invalid: GeminiInvalid) -> None:
        self.invalid = invalid


def _fail(message: str, field: str = "") -> NoReturn:
    raise _Reject(GeminiInvalid(message, field))


def check_generate_request(body: Mapping[str, Any], *, model: str) -> GeminiInvalid | None:
    """Why Gemini would answer 400 to `body` sent to `model`, or None if it is valid."""
    try:
        _check(body, model)
    except _Reject as reject:
        return reject.invalid
    return None


def _check(raw: Mapping[str, Any], model: str) -> None:
    body = _fields(raw, _TOP, "")
    contents = body.get("contents")
    if not contents:
        _fail(f"{_REQ}contents: contents is not specified\n", "contents")
    if not isinstance(contents, list):
        _fail(f"Invalid value at 'contents', {contents!r}", "contents")
    turns = [_content(content, f"contents[{index}]") for index, content in enumerate(contents)]
    if "systemInstruction" in body:
        _content(body["systemInstruction"], "system_instruction")
    names = _tools(body["tools"]) if "tools" in body else []
    if "toolConfig" in body:
        _tool_config(body["toolConfig"], names)
    if "generationConfig" in body:
        _generation(_fields(body["generationConfig"], _GENERATION, "generation_config"), model)
    tier = body.get("serviceTier")
    if tier is not None and (not isinstance(tier, str) or tier.lower() not in _TIERS):
        _fail(f"Invalid value at 'service_tier' (type.googleapis.com/google.ai."
              f"generativelanguage.v1beta.ServiceTier), {tier!r}", "service_tier")  # fmt: skip
    _turns(turns)
    if model.startswith("gemini-3"):
        _signatures(turns, model)


def thought_signature(model: str, name: str, args: Mapping[str, Any] | None) -> str:
    """The `thoughtSignature` the fake gives `model`'s call of `name` with `args`.

    Real signatures are opaque and bound to the model and its turn; these are bound to
    the model and the call, so a signature moved to another call or model is
    "Corrupted" here too.
    """
    payload = json.dumps([model, name, args or {}], sort_keys=True, separators=(",", ":"))
    return base64.b64encode(b"sig1" + hashlib.sha256(payload.encode()).digest()[:18]).decode()


def _generation(config: Mapping[str, Any], model: str) -> None:
    """generationConfig's values: thinking, structured output, logprobs, seed (§6.2)."""
    at = "generation_config"
    if "thinkingConfig" in config:
        thinking = _fields(config["thinkingConfig"], _THINKING, f"{at}.thinking_config")
        _thinking(thinking, model, f"{at}.thinking_config")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in _MIME_TYPES:
        _fail(
            f"{_REQ}{at}.response_mime_type: allowed mimetypes are `text/plain`,"
            " `application/json`, `application/xml`, `application/yaml` and `text/x.enum`.\n"
        )
    if "responseSchema" in config and "responseJsonSchema" in config:
        _fail(f"{_REQ}{at}: response_schema and response_json_schema cannot both be set.\n")
    if "responseJsonSchema" in config:
        if not isinstance(config["responseJsonSchema"], dict | bool):
            _fail(_struct(f"{at}.response_json_schema", config["responseJsonSchema"]))
        if mime != "application/json":
            _fail(f"{_REQ}{at}.response_mime_type: response_mime_type must be"
                  " application/json when response_json_schema is set.\n")  # fmt: skip
    if "responseSchema" in config:
        _schema(config["responseSchema"], f"{at}.response_schema")
        if mime not in ("application/json", "text/x.enum"):
            _fail(f"{_REQ}{at}.response_mime_type: response_mime_type must be"
                  " application/json or text/x.enum when response_schema is set.\n")  # fmt: skip
    logprobs = config.get("logprobs")
    if logprobs is not None:
        if not isinstance(logprobs, int) or not 0 <= logprobs <= 20:
            _fail(f"{_REQ}{at}.logprobs: logprobs must be in the range [0, 20].\n")
        if config.get("responseLogprobs") is not True:
            _fail(f"{_REQ}{at}.logprobs: logprobs is only valid if response_logprobs is true.\n")
    seed = config.get("seed")
    if seed is not None and (not isinstance(seed, int) or not -(2**31) <= seed < 2**31):
        _fail(f"Invalid value at '{at}.seed' (TYPE_INT32), {seed!r}", f"{at}.seed")
    stops = config.get("stopSequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        _fail(f"{_REQ}{at}.stop_sequences: at most 5 stop sequences are allowed.\n")


def _thinking(thinking: Mapping[str, Any], model: str, at: str) -> None:
    """Levels are Gemini 3's, budgets 2.5's (3 still takes them); never both (§6.2)."""
    version = _VERSION.match(model)
    major_minor = (int(version[1]), int(version[2] or 0)) if version else None
    if "thinkingLevel" in thinking and "thinkingBudget" in thinking:
        _fail(f"{_REQ}{at}: thinking_level and thinking_budget cannot both be set.\n")
    if major_minor is not None and major_minor < (2, 5) and thinking:
        _fail(f"{_REQ}{at}: Thinking is not enabled for models/{model}.\n")
    level = thinking.get("thinkingLevel")
    if level is not None:
        name = level.upper() if isinstance(level, str) else level
        if name not in _LEVELS:
            _fail(
                f"Invalid value at '{at}.thinking_level' (type.googleapis.com/google.ai."
                f"generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), {level!r}"
            )
        if major_minor is not None and major_minor < (3, 0):
            _fail(f"{_REQ}{at}.thinking_level: Thinking level is not supported for this model.\n")
        pro = "-pro" in model
        # Gemini 3 Pro thinks LOW or HIGH; later Pro models have no MINIMAL.
        if pro and (name == "MINIMAL" or (name == "MEDIUM" and major_minor == (3, 0))):
            _fail(f"{_REQ}{at}.thinking_level: Thinking level {name} is not supported for"
                  f" models/{model}.\n")  # fmt: skip
    budget = thinking.get("thinkingBudget")
    if budget is not None:
        if not isinstance(budget, int):
            _fail(f"Invalid value at '{at}.thinking_budget' (TYPE_INT32), {budget!r}")
        if "-pro" in model and major_minor == (2, 5) and budget == 0:
            _fail("Budget 0 is invalid. This model only works in thinking mode.")  # [OBS]
        low, high = (128, 32768) if "-pro" in model else (0, 24576)
        if budget != -1 and not low <= budget <= high:
            _fail(f"{_REQ}{at}.thinking_budget: The thinking budget {budget} is invalid."
                  f" Please choose a value between {low} and {high}.\n")  # fmt: skip


def _content(raw: Any, at: str) -> dict[str, Any]:
    content = _fields(raw, _CONTENT, at)
    role = content.get("role", "user")
    if role not in ("user", "model", ""):
        _fail("Please use a valid role: user, model.", f"{at}.role")
    parts = content.get("parts")
    if not parts:
        _fail(f"{_REQ}{at}.parts: contents.parts must not be empty.\n", f"{at}.parts")
    if not isinstance(parts, list):
        _fail(f"Invalid value at '{at}.parts', {parts!r}", f"{at}.parts")
    checked = [_part(part, f"{at}.parts[{index}]") for index, part in enumerate(parts)]
    return {"role": role or "user", "parts": checked}


def _part(raw: Any, at: str) -> dict[str, Any]:
    part = _fields(raw, _PART, at)
    data = [key for key in _DATA if key in part]
    if not data:
        _fail(f"{_REQ}{at}.data: required oneof field 'data' must have one initialized field", at)
    if len(data) > 1:
        _fail(
            f"Invalid JSON payload received. Oneof field 'data' is already set."
            f" Cannot set '{data[1]}' at '{at}'",
            at,
        )
    kind = data[0]
    if kind in _INNER:
        inner_at = f"{at}.{_snake(kind)}"
        part[kind] = _fields(part[kind], _INNER[kind], inner_at)
        if kind == "functionCall":
            _function_call(part[kind], inner_at)
        elif kind == "functionResponse":
            _function_response(part[kind], inner_at)
    elif kind == "text" and not isinstance(part["text"], str):
        _fail(f"Invalid value at '{at}.text' (TYPE_STRING), {part['text']!r}", f"{at}.text")
    signature = part.get("thoughtSignature")
    if signature is not None and not _is_base64(signature):
        _fail(f"Invalid value at '{at}.thought_signature' (TYPE_BYTES), Base64 decoding failed"
              f" for {signature!r}", f"{at}.thought_signature")  # fmt: skip
    return part


def _is_base64(value: Any) -> bool:
    """Proto-JSON bytes: standard or URL-safe base64, padded or not."""
    if not isinstance(value, str):
        return False
    text = value.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return False
    return True


def _function_call(call: Mapping[str, Any], at: str) -> None:
    if not call.get("name"):
        _fail(f"{_REQ}{at}.name: Name cannot be empty.\n", f"{at}.name")
    if "args" in call and not isinstance(call["args"], dict):
        _fail(_struct(f"{at}.args", call["args"]), f"{at}.args")


def _function_response(response: Mapping[str, Any], at: str) -> None:
    if not response.get("name"):
        _fail(f"{_REQ}{at}.name: Name cannot be empty.\n", f"{at}.name")
    if not isinstance(response.get("response"), dict):
        _fail(_struct(f"{at}.response", response.get("response")), f"{at}.response")


def _struct(at: str, value: Any) -> str:
    return f"Invalid value at '{at}' (type.googleapis.com/google.protobuf.Struct), {value!r}"


def _turns(turns: Sequence[Mapping[str, Any]]) -> None:
    """functionCall / functionResponse pairing between consecutive turns (§6.3)."""
    for index, turn in enumerate(turns):
        calls = [p["functionCall"] for p in turn["parts"] if "functionCall" in p]
        answers = [p["functionResponse"] for p in turn["parts"] if "functionResponse" in p]
        previous = turns[index - 1] if index else None
        if calls and (previous is None or previous["role"] != "user"):
            _fail(
                "Please ensure that function call turn comes immediately after a user turn or"
                " after a function response turn."
            )
        if not answers:
            continue
        asked = [
            p["functionCall"] for p in (previous or {"parts": []})["parts"] if "functionCall" in p
        ]
        if previous is None or previous["role"] != "model" or not asked:
            _fail(
                "Please ensure that function response turn comes immediately after a function"
                " call turn."
            )
        if len(answers) != len(asked):
            _fail(
                "Please ensure that the number of function response parts is equal to the"
                " number of function call parts of the function call turn."
            )
        # Not [OBS] wording: the fake's own check that each answer names a call it answers.
        if sorted(a["name"] for a in answers) != sorted(c["name"] for c in asked):
            _fail(
                f"{_REQ}contents[{index}]: function response names"
                f" {sorted(a['name'] for a in answers)} do not match the function call names"
                f" {sorted(c['name'] for c in asked)} of the function call turn."
            )
        ids = {c.get("id") for c in asked}
        for answer in answers:
            if "id" in answer and answer["id"] not in ids:
                _fail(
                    f"{_REQ}contents[{index}]: function response id {answer['id']!r} matches no"
                    " function call id of the function call turn."
                )


def _signatures(turns: Sequence[Mapping[str, Any]], model: str) -> None:
    """Gemini 3: the first functionCall of each step of the current turn is signed (§6.3),
    with the signature Gemini gave that call or a documented dummy one."""
    start = 0
    for index, turn in enumerate(turns):
        plain_user = turn["role"] == "user" and not any(
            "functionResponse" in p for p in turn["parts"]
        )
        if plain_user:
            start = index
    for index in range(start, len(turns)):
        for part in turns[index]["parts"]:
            signature = part.get("thoughtSignature")
            call = part.get("functionCall")
            if call and signature and signature not in _DUMMY_SIGNATURES:
                if signature != thought_signature(model, call["name"], call.get("args")):
                    _fail("Corrupted thought signature.")  # [OBS] PROVIDERS.md §6.3
        for part in turns[index]["parts"]:
            if "functionCall" in part:
                if not part.get("thoughtSignature"):
                    _fail(
                        "Function call is missing a thought_signature in functionCall parts."
                        " This is required for tools to work correctly, and missing"
                        " thought_signature may lead to degraded model performance. Additional"
                        f" data, function call `default_api:{part['functionCall']['name']}` ,"
                        f" position {index + 1}. Please refer to"
                        " https://ai.google.dev/gemini-api/docs/thought-signatures for more"
                        " details."
                    )
                break  # only the first call of a step carries the signature


def _tools(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        _fail(f"Invalid value at 'tools', {raw!r}", "tools")
    names: list[str] = []
    for index, entry in enumerate(raw):
        tool = _fields(entry, _TOOL, f"tools[{index}]")
        declarations = tool.get("functionDeclarations") or []
        for position, raw_declaration in enumerate(declarations):
            at = f"tools[{index}].function_declarations[{position}]"
            declaration = _fields(raw_declaration, _DECLARATION, at)
            name = declaration.get("name")
            if not isinstance(name, str) or NAME_RULE.fullmatch(name) is None:
                _fail(
                    f"{_REQ}{at}.name: Invalid function name. Must start with a letter or an"
                    " underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots"
                    " (.), colons (:), or dashes (-), with a maximum length of 128.\n",
                    f"{at}.name",
                )
            if name in names:
                _fail(f"{_REQ}{at}.name: Duplicate function declaration: {name}\n", f"{at}.name")
            names.append(name)
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                _fail(
                    f"{_REQ}{at}: parameters and parameters_json_schema cannot both be set.\n", at
                )
            if "parameters" in declaration:
                _schema(declaration["parameters"], f"{at}.parameters")
            if "parametersJsonSchema" in declaration and not isinstance(
                declaration["parametersJsonSchema"], dict
            ):
                _fail(_struct(f"{at}.parameters_json_schema", declaration["parametersJsonSchema"]))
    return names


def _schema(raw: Any, at: str) -> None:
    """`parameters` is an OpenAPI-subset Schema: JSON-schema extras are unknown fields."""
    schema = _fields(raw, _SCHEMA, at)
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in _TYPES):
        _fail(f"Invalid value at '{at}.type' (type.googleapis.com/google.ai.generativelanguage."
              f"v1beta.Type), {kind!r}", f"{at}.type")  # fmt: skip
    for name, inner in (schema.get("properties") or {}).items():
        _schema(inner, f"{at}.properties[{name}].value")
    if "items" in schema:
        _schema(schema["items"], f"{at}.items")
    for index, inner in enumerate(schema.get("anyOf") or ()):
        _schema(inner, f"{at}.any_of[{index}]")


def _tool_config(raw: Any, names: Sequence[str]) -> None:
    config = _fields(raw, frozenset({"functionCallingConfig", "retrievalConfig"}), "tool_config")
    at = "tool_config.function_calling_config"
    calling = _fields(
        config.get("functionCallingConfig", {}), frozenset({"mode", "allowedFunctionNames"}), at
    )
    mode = calling.get("mode", "AUTO")
    if mode not in _MODES:
        _fail(
            f"Invalid value at '{at}.mode' (type.googleapis.com/google.ai.generativelanguage."
            f"v1beta.FunctionCallingConfig.Mode), {mode!r}",
            f"{at}.mode",
        )
    allowed = calling.get("allowedFunctionNames")
    if allowed:
        if mode not in ("ANY", "VALIDATED"):
            _fail(
                f"{_REQ}{at}.allowed_function_names: allowed_function_names may be set only"
                " when mode is ANY or VALIDATED.\n"
            )
        for name in allowed:
            if name not in names:
                _fail(f"{_REQ}{at}.allowed_function_names: {name!r} is not a declared function.\n")


def _fields(raw: Any, allowed: frozenset[str], at: str) -> dict[str, Any]:
    """`raw` with lowerCamelCase keys; an unknown key fails as Google's parser does."""
    if not isinstance(raw, dict):
        where = f" at '{at}'" if at else ""
        _fail(f"Invalid JSON payload received. Expected an object{where}.", at)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        camel = _camel(key)
        if camel not in allowed:
            where = f" at '{at}'" if at else ""
            field = f"{at}.{key}" if at else key
            _fail(f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.',
                  field)  # fmt: skip
        out[camel] = value
    return out


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()
