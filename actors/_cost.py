"""What an answer cost: its `Usage` priced with the deployment's `Price`.

The counts come from OpenAI's usage shape as every adapter reports it:
`prompt_tokens` (all input), `prompt_tokens_details.cached_tokens` (read from the
prompt cache), `.cache_creation_tokens` (written to it) and
`.cache_creation_token_details.ephemeral_1h_input_tokens` (Anthropic's 1-hour writes).
A count that is present but not a non-negative integer makes the cost unknown.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from config import Price

from ._chat import ChatCompletion, ChatCompletionChunk, Usage

_DECIMALS: Final = 10


def usage_cost(price: Price | None, usage: Usage | None) -> float | None:
    """USD for `usage` at `price`, or None when either is missing or a count is unreadable."""
    if price is None or usage is None:
        return None
    details = usage.prompt_tokens_details
    details = details if isinstance(details, dict) else {}
    writes = details.get("cache_creation_token_details")
    writes = writes if isinstance(writes, dict) else {}
    counts = (
        usage.prompt_tokens,
        usage.completion_tokens,
        details.get("cached_tokens", 0),
        details.get("cache_creation_tokens", 0),
        writes.get("ephemeral_1h_input_tokens", 0),
    )
    if not all(_count(value) for value in counts):
        return None
    prompt, completion, cached, written, written_1h = counts
    cost = price.cost(
        prompt=prompt,
        completion=completion,
        cached=cached,
        cache_write=written,
        cache_write_1h=written_1h,
    )
    return None if cost is None else round(cost, _DECIMALS)


def priced(usage: Usage, cost: float | None) -> Usage:
    """`usage` carrying `cost` as `cost_usd` (or none at all when the cost is unknown)."""
    value = msgspec.UNSET if cost is None else cost
    if usage.cost_usd == value:
        return usage
    return msgspec.structs.replace(usage, cost_usd=value)


def priced_completion(completion: ChatCompletion, cost: float | None) -> ChatCompletion:
    usage = completion.usage
    if not usage:
        return completion
    return msgspec.structs.replace(completion, usage=priced(usage, cost))


def priced_chunk(chunk: ChatCompletionChunk, cost: float | None) -> ChatCompletionChunk:
    usage = chunk.usage
    if not usage:
        return chunk
    return msgspec.structs.replace(chunk, usage=priced(usage, cost))


def format_cost(cost: float) -> str:
    """`cost` as a header value: plain decimal notation, no exponent, no trailing zeros."""
    text = f"{cost:.{_DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
