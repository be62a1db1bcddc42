"""Strict fake providers for tests, served on real loopback sockets.

    fake = OpenAIFake(api_key="sk-test")
    fake.script(openai_rate_limited(retry_after=1), success(content="second try"))
    async with serve_app(fake) as url:
        ...  # point the code under test at url + "/v1"
        first, second = await fake.wait_for_requests(2)

- `serve_app(app)` serves any ASGI app on 127.0.0.1 and yields its base URL.
- `OpenAIFake`, `AzureFake` reject what the real services reject (PROVIDERS.md §1-§2), with
  their status and error body, and otherwise answer a deterministic completion.
- `fake.script(...)` queues directives (`success`, `error`, `garbage`, `hang`, `wait`,
  `close`); each request that passes the fake's checks consumes one.
- `fake.requests` records every request (`RecordedRequest`); `wait_for_requests(n)` awaits
  arrivals so tests never poll or sleep.
"""

from ._asgi import ABORT_EXTENSION
from ._azure import AZURE_PARAMS, AzureFake, azure_content_filter, azure_rate_limited
from ._base import FakeProvider, FakeStatistics
from ._chat_rules import OPENAI_PARAMS, Invalid, check_chat_request
from ._openai import (
    OpenAIFake,
    openai_context_length_exceeded,
    openai_insufficient_quota,
    openai_rate_limited,
)
from ._recording import RecordedRequest
from ._script import (
    Close,
    ConnectionDropped,
    Directive,
    Error,
    Garbage,
    Hang,
    Success,
    Wait,
    close,
    error,
    garbage,
    hang,
    success,
    wait,
)
from ._server import serve_app

__all__ = [
    "ABORT_EXTENSION",
    "AZURE_PARAMS",
    "OPENAI_PARAMS",
    "AzureFake",
    "Close",
    "ConnectionDropped",
    "Directive",
    "Error",
    "FakeProvider",
    "FakeStatistics",
    "Garbage",
    "Hang",
    "Invalid",
    "OpenAIFake",
    "RecordedRequest",
    "Success",
    "Wait",
    "azure_content_filter",
    "azure_rate_limited",
    "check_chat_request",
    "close",
    "error",
    "garbage",
    "hang",
    "openai_context_length_exceeded",
    "openai_insufficient_quota",
    "openai_rate_limited",
    "serve_app",
    "success",
    "wait",
]
