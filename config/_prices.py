"""Prices: what an answer costs in USD, from its token counts.

A `Price` is one `[[model.price]]` of the model table (`config/models.toml`) or a
deployment's own `*_cost_per_mtok` keys. Rates are USD per million tokens. Counts
follow OpenAI's usage: `prompt` includes the cached (read) and cache-write tokens.

    >>> price = Price(input=3.0, output=15.0, cached_input=0.3, source="s", date="2026-11-29")
    >>> round(price.cost(prompt=1_000_000, completion=0, cached=1_000_000), 6)
    0.3

A count the price has no rate for (cached tokens without `cached_input`, cache writes
without `cache_write`) makes the cost unknown (None): never a wrong number.
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import Meta, Struct

from ._schema import Provider

Rate = Annotated[float, Meta(ge=0.0, le=100_000.0)]
"""USD per million tokens (bounded: a typo of a few zeros is an error, not a bill)."""
Day = Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
_PER_TOKEN: Final = 1e-6


class Rates(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """USD per million tokens of each kind."""

    input: Rate
    """Input tokens that are neither read from nor written to a prompt cache."""
    output: Rate
    """Output tokens (reasoning tokens included: they are billed as output)."""
    cached_input: Rate | None = None
    """Input read from the prompt cache (OpenAI `cached_tokens`, Anthropic cache hits)."""
    cache_write: Rate | None = None
    """Input written to the prompt cache (Anthropic's 5-minute writes; all writes elsewhere)."""
    cache_write_1h: Rate | None = None
    """Anthropic's 1-hour cache writes."""

    def cost(
        self,
        *,
        prompt: int,
        completion: int,
        cached: int = 0,
        cache_write: int = 0,
        cache_write_1h: int = 0,
    ) -> float | None:
        """USD for these counts, or None when a count has no rate here."""
        if cached and self.cached_input is None:
            return None
        write_5m = max(cache_write - cache_write_1h, 0)
        if write_5m and self.cache_write is None:
            return None
        if cache_write_1h and self.cache_write_1h is None:
            return None
        plain = max(prompt - cached - cache_write, 0)
        total = plain * self.input + completion * self.output
        total += cached * (self.cached_input or 0.0)
        total += write_5m * (self.cache_write or 0.0)
        total += cache_write_1h * (self.cache_write_1h or 0.0)
        return total * _PER_TOKEN


class Price(Rates, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A model's rates, where they come from and when they were read.

    With `above_input_tokens`, a request whose prompt (cached and cache-write tokens
    included) is longer is priced at `above` for every token, output too (Anthropic's
    and Gemini's long-context prices).
    """

    source: str = ""
    """Where the rates come from (a pricing page's URL, a public price table)."""
    date: Day | None = None
    """When they were read (YYYY-MM-DD)."""
    providers: tuple[Provider, ...] = ()
    """The providers these rates are for (a model table row's price must name them: the
    same model often costs another amount elsewhere, e.g. on a cloud's regional endpoint)."""
    match: tuple[str, ...] = ()
    """Narrows the rates to these of the row's ids (patterns as the row's `match`)."""
    above_input_tokens: Annotated[int, Meta(ge=1)] | None = None
    above: Rates | None = None

    def __post_init__(self) -> None:
        if (self.above_input_tokens is None) != (self.above is None):
            raise ValueError("above_input_tokens and above: set both or neither")

    def cost(
        self,
        *,
        prompt: int,
        completion: int,
        cached: int = 0,
        cache_write: int = 0,
        cache_write_1h: int = 0,
    ) -> float | None:
        rates: Rates = self
        if self.above is not None and self.above_input_tokens is not None:
            if prompt > self.above_input_tokens:
                rates = self.above
        return Rates.cost(
            rates,
            prompt=prompt,
            completion=completion,
            cached=cached,
            cache_write=cache_write,
            cache_write_1h=cache_write_1h,
        )
