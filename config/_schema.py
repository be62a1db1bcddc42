"""The config schema: frozen Structs that reject unknown keys.

Every value is validated when the file is decoded (types, ranges, cross-field
rules), so a `Config` that exists is a config that can run.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct

from ._secret import Secret

Provider = Literal[
    "openai", "azure", "anthropic", "bedrock", "mistral", "gemini", "openai-compatible", "mock"
]
Strategy = Literal["simple-shuffle", "least-busy", "latency", "usage"]

PositiveInt = Annotated[int, Meta(ge=1)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]

HostName = Annotated[
    str, Meta(min_length=1, max_length=253, pattern=r"^(\*|[A-Za-z0-9._:\[\]-]+)$")
]

MIN_API_KEY_LENGTH: Final = 16
MOCK_KNOBS: Final = (
    "latency_ms",
    "reply",
    "fail_status",
    "fail_times",
    "hang",
    "fault",
    "retry_after_s",
)
MockFault = Literal[
    "context_window",
    "content_policy",
    "rate_limited",
    "stall_before_first_token",
    "stall_after_first_token",
    "keepalive_only",
]
"""Fault drills of the mock provider (see `Deployment.fault`)."""
_OUTPUT_BUDGET_PROVIDERS: Final = frozenset({"anthropic", "bedrock"})
"""Providers whose adapter sends a default output budget (Deployment.max_output_tokens)."""


def parse_host_port(value: str) -> tuple[str, int] | None:
    """Split ``host:port`` (``[::1]:9464`` for IPv6); None when it is not one."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host.strip("[]"), int(port)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Table(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config table: immutable, keyword-only, unknown keys rejected."""


class ServerConfig(_Table, frozen=True):
    socket: str = "run/dispatcher.sock"
    """HTTP/1.1 over a Unix socket, created with mode 0600."""
    metrics: str = "127.0.0.1:9464"
    """host:port of the Prometheus scrape listener; "" disables it."""
    listen: str = ""
    """Optional TCP listener (host:port) serving the same routes as the socket; "" disables it."""
    api_keys: tuple[Secret, ...] = ()
    """Bearer tokens accepted on `listen`; required unless it is bound to loopback."""
    allowed_hosts: tuple[HostName, ...] = ()
    """Extra `Host` names `listen` answers to (besides localhost and its own address); "*": any."""
    max_body_bytes: PositiveInt = 8 * 1024 * 1024
    max_header_bytes: Annotated[int, Meta(ge=1024, le=1024 * 1024)] = 64 * 1024
    """Request line plus headers of one request; over it: 431 and the connection closes."""
    max_headers: Annotated[int, Meta(ge=8, le=1000)] = 100
    max_connections: PositiveInt = 4096
    """Client connections open at once, over every listener (lowered to fit the fd limit)."""
    header_timeout_s: PositiveFloat = 10.0
    """A request head must arrive whole within this long (from its first byte)."""
    body_timeout_s: PositiveFloat = 60.0
    """A request body must arrive whole within this long after its head."""
    send_timeout_s: PositiveFloat = 60.0
    """A client that reads nothing of an answer for this long is disconnected."""
    keepalive_timeout_s: PositiveFloat = 30.0
    """An idle keep-alive connection is closed after this long."""
    drain_timeout_s: NonNegativeFloat = 30.0

    def __post_init__(self) -> None:
        for key in ("metrics", "listen"):
            value = getattr(self, key)
            if value and parse_host_port(value) is None:
                raise ValueError(f"{key}: expected 'host:port' (e.g. 127.0.0.1:9464)")
        for index, secret in enumerate(self.api_keys):
            if len(secret.reveal()) < MIN_API_KEY_LENGTH:
                raise ValueError(
                    f"api_keys: key {index} ({secret.redacted()}) is shorter than "
                    f"{MIN_API_KEY_LENGTH} characters"
                )
        address = parse_host_port(self.listen) if self.listen else None
        if address is not None and not self.api_keys and not is_loopback_host(address[0]):
            raise ValueError(
                "listen: not a loopback address, so [server].api_keys must hold the bearer "
                'tokens clients send (e.g. api_keys = ["env:DISPATCHER_API_KEY"]); '
                "or listen on 127.0.0.1"
            )


class JobsConfig(_Table, frozen=True):
    store: str = "run/jobs.sqlite3"
    concurrency: PositiveInt = 256
    retention_s: NonNegativeFloat = 86400.0


class CooldownConfig(_Table, frozen=True):
    allowed_fails: PositiveInt = 3
    """Failures within window_s that open the breaker."""
    window_s: PositiveFloat = 60.0
    cooldown_s: NonNegativeFloat = 30.0


class RouterConfig(_Table, frozen=True):
    strategy: Strategy = "simple-shuffle"
    num_retries: NonNegativeInt = 2
    timeout_s: PositiveFloat = 600.0
    default_fallbacks: tuple[str, ...] = ()
    fallbacks: dict[str, tuple[str, ...]] = {}
    context_window_fallbacks: dict[str, tuple[str, ...]] = {}
    content_policy_fallbacks: dict[str, tuple[str, ...]] = {}
    cooldown: CooldownConfig = CooldownConfig()
    default_output_tokens: PositiveInt = 1024
    """Answer tokens reserved against tpm for a request that sets neither
    max_completion_tokens nor max_tokens (settled on the reported usage)."""


class Deployment(_Table, frozen=True):
    """One `[[deployment]]`: a provider model behind its own actor."""

    name: Name
    group: Name
    provider: Provider
    model: Annotated[str, Meta(min_length=1)]
    api_base: str | None = None
    api_key: Secret | None = None
    api_version: str | None = None
    region: str | None = None
    weight: PositiveFloat = 1.0
    inbox: PositiveInt = 64
    concurrency: PositiveInt = 8
    rpm: NonNegativeInt = 0
    tpm: NonNegativeInt = 0
    timeout_s: PositiveFloat = 120.0
    first_token_timeout_s: PositiveFloat = 20.0
    idle_timeout_s: PositiveFloat = 30.0
    """Streaming: longest gap between pieces after the first content (any bytes reset it)."""
    max_response_bytes: PositiveInt = 32 * 1024 * 1024
    """Largest answer read from the provider (decoded bytes, whole or streamed); past it the
    attempt fails as server_error and the connection is dropped."""
    max_input_tokens: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    """Output budget sent when a request sets none (anthropic, bedrock); default: the model
    table's maximum output for `model`."""
    input_cost_per_mtok: Annotated[float, Meta(ge=0.0, le=100_000.0)] | None = None
    """USD per million input tokens; with output_cost_per_mtok it replaces the model
    table's price of `model` (see config/models.toml)."""
    output_cost_per_mtok: Annotated[float, Meta(ge=0.0, le=100_000.0)] | None = None
    cached_input_cost_per_mtok: Annotated[float, Meta(ge=0.0, le=100_000.0)] | None = None
    """Input read from the prompt cache (unset: an answer with cached tokens has no cost)."""
    cache_write_cost_per_mtok: Annotated[float, Meta(ge=0.0, le=100_000.0)] | None = None
    """Input written to the prompt cache (Anthropic, Bedrock)."""
    supports_tools: bool = True
    drop_params: bool = True
    headers: dict[str, str] = {}
    """Extra HTTP headers sent to the provider (not secrets: they are printed by `check`)."""
    # The mock provider's knobs, so demos and load tests need no network.
    latency_ms: NonNegativeFloat = 0.0
    reply: str | None = None
    fail_status: Annotated[int, Meta(ge=400, le=599)] | None = None
    fail_times: NonNegativeInt = 0
    """With fail_status or fault: fail the first N attempts (0: every attempt)."""
    hang: bool = False
    fault: MockFault | None = None
    """A fault drill: "context_window" and "content_policy" answer OpenAI's 400 of that
    kind; "rate_limited" a 429 with Retry-After: retry_after_s; streamed requests
    "stall_before_first_token" (the role chunk, then nothing), "stall_after_first_token"
    (the first word, then nothing) or get "keepalive_only" (`: keep-alive` comments,
    never a token). A stalling fault holds a non-streamed request unanswered."""
    retry_after_s: Annotated[float, Meta(ge=0, le=86400)] | None = None
    """With fault = "rate_limited" or fail_status 429/503: the Retry-After sent (default 1)."""

    def __post_init__(self) -> None:
        if self.provider != "mock":
            for knob in MOCK_KNOBS:
                if getattr(self, knob) != getattr(_MOCK_DEFAULTS, knob):
                    raise ValueError(f"{knob}: a knob of provider 'mock', not {self.provider!r}")
        if self.fault is not None and self.fail_status is not None:
            raise ValueError("fault: one failure at a time (fail_status is set too)")
        if self.retry_after_s is not None and not (
            self.fault == "rate_limited" or self.fail_status in (429, 503)
        ):
            raise ValueError(
                'retry_after_s: only with fault = "rate_limited" or fail_status 429/503'
            )
        if self.provider == "azure" and not self.api_base:
            raise ValueError(
                "api_base: provider 'azure' needs it (https://RESOURCE.openai.azure.com)"
            )
        if self.provider == "openai-compatible" and not self.api_base:
            raise ValueError(
                "api_base: provider 'openai-compatible' needs it (http://host:8000/v1)"
            )
        if self.provider == "bedrock" and not (self.region or self.api_base):
            raise ValueError("region: provider 'bedrock' needs it (or api_base)")
        if self.max_output_tokens is not None and self.provider not in _OUTPUT_BUDGET_PROVIDERS:
            raise ValueError(
                "max_output_tokens: only providers "
                f"{', '.join(sorted(_OUTPUT_BUDGET_PROVIDERS))} use it, not {self.provider!r}"
            )
        if (self.input_cost_per_mtok is None) != (self.output_cost_per_mtok is None):
            raise ValueError(
                "input_cost_per_mtok and output_cost_per_mtok: set both (the deployment's own "
                "price) or neither (the model table's)"
            )
        if self.input_cost_per_mtok is None:
            for key in ("cached_input_cost_per_mtok", "cache_write_cost_per_mtok"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: needs input_cost_per_mtok and output_cost_per_mtok")
        if self.api_base is not None and not self.api_base.startswith(("http://", "https://")):
            raise ValueError("api_base: expected an http:// or https:// URL")


class _MockDefaults(Struct, frozen=True):
    latency_ms: float = 0.0
    reply: str | None = None
    fail_status: int | None = None
    fail_times: int = 0
    hang: bool = False
    fault: str | None = None
    retry_after_s: float | None = None


_MOCK_DEFAULTS: Final = _MockDefaults()


_REDIS_SCHEMES: Final = ("redis", "rediss", "unix")


class ClusterConfig(_Table, frozen=True):
    """`[cluster]`: daemons that name the same Redis and `name` share limits and breakers."""

    redis: Secret | None = None
    """Redis URL (redis://, rediss://, unix://), or `env:NAME`; absent or "": no cluster.
    A secret because it may carry a password."""
    name: Name = "dispatcher"
    """Key prefix: daemons with the same name share state; other names on one Redis do not."""

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        assert self.redis is not None
        url = urlsplit(self.redis.reveal())
        if url.scheme not in _REDIS_SCHEMES or not (url.hostname or url.path):
            raise ValueError(
                "redis: expected a redis://host:port/db, rediss:// or unix:// URL "
                "(e.g. redis://127.0.0.1:6379/0)"
            )

    @property
    def enabled(self) -> bool:
        """Whether this daemon runs in cluster mode."""
        return self.redis is not None and bool(self.redis.reveal())

    def describe(self) -> str:
        """The Redis address without its password (for `check` and logs)."""
        if self.redis is None or not self.enabled:
            return "off"
        if self.redis.source != "inline":
            return self.redis.redacted()
        url = urlsplit(self.redis.reveal())
        if url.scheme == "unix":
            return f"unix://{url.path}"
        auth = "***@" if url.password or url.username else ""
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{auth}{url.hostname}{port}{url.path}"


class Config(_Table, frozen=True):
    """A whole dispatcher config file."""

    server: ServerConfig = ServerConfig()
    jobs: JobsConfig = JobsConfig()
    router: RouterConfig = RouterConfig()
    cluster: ClusterConfig = ClusterConfig()
    deployment: tuple[Deployment, ...] = msgspec.field(default=())

    def groups(self) -> dict[str, tuple[Deployment, ...]]:
        """Model groups in config order, each with its deployments."""
        out: dict[str, list[Deployment]] = {}
        for dep in self.deployment:
            out.setdefault(dep.group, []).append(dep)
        return {name: tuple(deps) for name, deps in out.items()}
