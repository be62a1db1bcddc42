"""The model table: limits and request rules of known models, shipped as data.

`config/models.toml` lists model families by id pattern (context window, maximum
output, how the model thinks, which sampling parameters it takes...). It is read
once, validated like a config file, and looked up by a deployment's `model`:

    >>> model_info("us.anthropic.claude-sonnet-4-5-20250929-v1:0").max_output_tokens
    64000
    >>> model_info("no-such-model").id
    'unknown'

Bedrock ids (`anthropic.claude-...-v1:0`, with or without a region prefix), Vertex ids
(`claude-...@20250805`) and Anthropic ids resolve to the same row.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import tomllib
from importlib import resources
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, Struct

from ._prices import Price
from ._schema import Deployment

Thinking = Literal["none", "budget", "adaptive", "adaptive-only"]
Sampling = Literal["both", "one", "none"]
Effort = Literal["low", "medium", "high", "xhigh", "max"]

_PREFIX: Final = re.compile(
    r"^(?:.*/)?"  # an ARN or a path: keep the last segment
    r"(?:(?:us|eu|apac|au|ca|jp|global|us-gov)\.)?"  # a Bedrock inference profile's region
    r"(?:anthropic\.)?"  # the Bedrock provider prefix
)
_SUFFIX: Final = re.compile(r"(?:-v\d+(?::\d+)?|:\d+|@[\w.-]+)$")


class ModelInfo(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One row of the model table (see `config/models.toml` for what each field means)."""

    id: str
    match: tuple[str, ...]
    source: str
    """Where the numbers come from."""
    context_window: Annotated[int, Meta(ge=1)]
    max_output_tokens: Annotated[int, Meta(ge=1)]
    max_output_nonstreaming: Annotated[int, Meta(ge=1)] | None = None
    family: str = ""
    thinking: Thinking = "none"
    effort: tuple[Effort, ...] = ()
    sampling: Sampling = "both"
    structured_outputs: bool = False
    price: tuple[Price, ...] = ()
    """The model's prices, each for some providers (and maybe some of the row's ids)."""

    def __post_init__(self) -> None:
        for index, price in enumerate(self.price):
            for key in ("providers", "source", "date"):
                if not getattr(price, key):
                    raise ValueError(f"{self.id}: price[{index}].{key} is required")

    def price_for(self, provider: str, model_id: str) -> Price | None:
        """The first price of this row for `provider` whose `match` takes `model_id`."""
        name = normalise(model_id)
        for price in self.price:
            if provider in price.providers and (
                not price.match or any(fnmatch.fnmatchcase(name, p) for p in price.match)
            ):
                return price
        return None

    def default_output(self, *, streaming: bool) -> int:
        """The output budget to send when a request sets none."""
        if not streaming and self.max_output_nonstreaming is not None:
            return min(self.max_output_tokens, self.max_output_nonstreaming)
        return self.max_output_tokens


class ModelTable(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every row, and the row of an id no pattern matches."""

    default: ModelInfo
    model: tuple[ModelInfo, ...] = ()

    def lookup(self, model_id: str) -> ModelInfo:
        """The row of `model_id`: the longest matching pattern wins, else `default`."""
        name = normalise(model_id)
        best: tuple[int, ModelInfo] | None = None
        for row in self.model:
            for pattern in row.match:
                if fnmatch.fnmatchcase(name, pattern) and (best is None or len(pattern) > best[0]):
                    best = (len(pattern), row)
        return self.default if best is None else best[1]


def normalise(model_id: str) -> str:
    """`model_id` as the table's patterns see it: lower case, without platform decorations."""
    name = _PREFIX.sub("", model_id.strip().lower(), count=1)
    return _SUFFIX.sub("", name)


def parse_model_table(text: str) -> ModelTable:
    """A model table from TOML `text`; raises ValueError naming the key that is wrong."""
    try:
        return msgspec.convert(tomllib.loads(text), ModelTable)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"model table: {exc}") from None


@functools.cache
def model_table() -> ModelTable:
    """The shipped table, read once (it is immutable)."""
    text = resources.files("config").joinpath("models.toml").read_text(encoding="utf-8")
    return parse_model_table(text)


def model_info(model_id: str) -> ModelInfo:
    """The shipped table's row for `model_id`."""
    return model_table().lookup(model_id)


def deployment_price(spec: Deployment, table: ModelTable | None = None) -> Price | None:
    """What `spec`'s answers cost: its own `*_cost_per_mtok` keys, else the model table's
    price of its model for its provider, else None (unknown: no cost is reported)."""
    if spec.input_cost_per_mtok is not None and spec.output_cost_per_mtok is not None:
        return Price(
            input=spec.input_cost_per_mtok,
            output=spec.output_cost_per_mtok,
            cached_input=spec.cached_input_cost_per_mtok,
            cache_write=spec.cache_write_cost_per_mtok,
            source=f"deployment {spec.name!r} (*_cost_per_mtok)",
        )
    row = (table or model_table()).lookup(spec.model)
    return row.price_for(spec.provider, spec.model)
