"""SigV4 request signing for Bedrock, done by botocore (PROVIDERS.md §4.8).

botocore is an optional extra (`pip install 'llm-dispatcher[bedrock]'`): it is
imported on first use only, so the rest of the daemon runs without it. Signing is
never hand-rolled: `botocore.auth.SigV4Auth` signs, and botocore's standard chain
(environment, shared files, SSO, container and instance roles) finds the
credentials, refreshing temporary ones as botocore does.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncGenerator, Generator
from typing import Any, Final

import anyio.to_thread
import httpx

from .._exceptions import ErrorClass, ProviderError

SIGNING_NAME: Final = "bedrock"
"""The SigV4 service name of Bedrock Runtime (not `bedrock-runtime`)."""
_SIGNED_RESULT_HEADERS: Final = ("authorization", "x-amz-date", "x-amz-security-token")
_REMEMBERED_CREDENTIALS: Final = 4


class BedrockSigV4(httpx.Auth):
    """An `httpx.Auth` that signs each request with SigV4 for `bedrock` in `region`.

    `credentials` (a botocore `Credentials`) is for tests; by default they are
    resolved lazily, on the first request, from botocore's standard chain. The chain
    and refreshes may do blocking I/O (an STS or instance-metadata call), so the
    async flow runs them in a worker thread.
    """

    requires_request_body = True

    def __init__(self, region: str, credentials: Any = None) -> None:
        self.region = region
        self._credentials = credentials
        self._lock = threading.Lock()
        # The last credentials signed with (refreshes rotate them), for `secrets()`.
        self._signed: deque[tuple[str, ...]] = deque(maxlen=_REMEMBERED_CREDENTIALS)

    def __repr__(self) -> str:
        state = "unresolved" if self._credentials is None else type(self._credentials).__name__
        return f"<BedrockSigV4 {self.region} [credentials {state}]>"

    def secrets(self) -> tuple[str, ...]:
        """Access key ids, secret keys and session tokens of recent signatures (no I/O), so
        the actor can redact them from whatever an upstream says back."""
        with self._lock:
            return tuple(value for signed in self._signed for value in signed)

    def _remember(self, frozen: Any) -> None:
        values = tuple(
            value
            for value in (frozen.access_key, frozen.secret_key, getattr(frozen, "token", None))
            if isinstance(value, str) and value
        )
        with self._lock:
            if values not in self._signed:
                self._signed.append(values)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        frozen = self.frozen_credentials()
        self._remember(frozen)
        sign(request, frozen, self.region)
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        credentials = self._credentials
        if credentials is None or hasattr(credentials, "refresh_needed"):
            # Abandoned on cancel: a slow credential lookup must not hold up a deadline.
            frozen = await anyio.to_thread.run_sync(self.frozen_credentials, abandon_on_cancel=True)
        else:
            frozen = credentials.get_frozen_credentials()  # static: no I/O
        self._remember(frozen)
        sign(request, frozen, self.region)
        yield request

    def frozen_credentials(self) -> Any:
        """A consistent (access key, secret, token) snapshot, resolving the chain once."""
        with self._lock:
            if self._credentials is None:
                self._credentials = _resolve_credentials()
            credentials = self._credentials
        return credentials.get_frozen_credentials()


def sign(request: httpx.Request, credentials: Any, region: str) -> None:
    """Sign `request` in place: botocore computes, we copy its headers over.

    Only `host`, `content-type` and the `x-amz-*` headers are signed: transports add
    or rewrite hop-by-hop headers (connection, accept-encoding) after signing.
    """
    auth, aws_request_class = _botocore()
    aws = aws_request_class(
        method=request.method,
        url=str(request.url),
        data=request.content,
        headers={"content-type": request.headers.get("content-type", "application/json")},
    )
    auth(credentials, SIGNING_NAME, region).add_auth(aws)
    for name in _SIGNED_RESULT_HEADERS:
        value = aws.headers.get(name)
        if value is not None:
            request.headers[name] = value


def _resolve_credentials() -> Any:
    _botocore()
    import botocore.session

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise ProviderError(
            ErrorClass.AUTH,
            "bedrock: no AWS credentials found (botocore looked in AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config files, SSO, container"
            " and instance roles); configure one, or set api_key to a Bedrock API key",
        )
    return credentials


def _botocore() -> tuple[Any, Any]:
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
    except ImportError:
        raise ProviderError(
            ErrorClass.AUTH,
            "bedrock: SigV4 signing needs botocore (pip install 'llm-dispatcher[bedrock]'),"
            " or set api_key to a Bedrock API key",
        ) from None
    return SigV4Auth, AWSRequest
