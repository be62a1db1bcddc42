"""The shipped model table: every id form resolves to its row; the rows are sane."""

from __future__ import annotations

import pytest

from config import ConfigError, ModelTable, model_info, model_table, parse_config, parse_model_table

from .fakes._claude_models import claude_model


@pytest.mark.parametrize(
    ("model_id", "row", "max_output"),
    [
        pytest.param("claude-3-5-haiku-20241022", "claude-3-5-haiku", 8192, id="anthropic-dated"),
        pytest.param("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku", 8192,
                     id="bedrock"),
        pytest.param("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", 64000,
                     id="bedrock-inference-profile"),
        pytest.param("global.anthropic.claude-opus-4-7", "claude-opus-4-7", 128000,
                     id="bedrock-global-no-version"),
        pytest.param("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                     "eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5", 64000,
                     id="bedrock-arn"),
        pytest.param("anthropic.claude-opus-4-6-v1", "claude-opus-4-6", 128000, id="bedrock-v1"),
        pytest.param("claude-opus-4-1@20250805", "claude-opus-4-1", 32000, id="vertex"),
        pytest.param("claude-sonnet-4-20250514", "claude-sonnet-4", 64000, id="sonnet-4"),
        pytest.param("claude-sonnet-4-0", "claude-sonnet-4", 64000, id="sonnet-4-alias"),
        pytest.param("claude-sonnet-4-5", "claude-sonnet-4-5", 64000, id="not-sonnet-4"),
        pytest.param("claude-opus-4-20250514", "claude-opus-4", 32000, id="opus-4"),
        pytest.param("claude-opus-5-5", "claude-opus-5", 128000, id="opus-5-5"),
        pytest.param("Claude-Haiku-4-5", "claude-haiku-4-5", 64000, id="case"),
        pytest.param("claude-next-9", "claude", 4096, id="unknown-claude"),
        pytest.param("gpt-4o-2024-08-06", "gpt-4o", 16384, id="openai-dated"),
        pytest.param("gpt-4o-mini", "gpt-4o-mini", 16384, id="openai-longest-pattern"),
        pytest.param("llama-3-70b", "unknown", 4096, id="unknown"),
        pytest.param("amazon.nova-pro-v1:0", "unknown", 4096, id="unknown-bedrock"),
    ],
)  # fmt: skip
def test_ids_resolve_to_their_row(model_id: str, row: str, max_output: int) -> None:
    """Anthropic, Bedrock and Vertex ids of a model find one row; the longest pattern wins."""
    info = model_info(model_id)
    assert (info.id, info.max_output_tokens) == (row, max_output)


def test_every_claude_row_agrees_with_what_the_fakes_enforce() -> None:
    """Each Claude row's limits and rules match the strict fakes' independent rules."""
    for row in model_table().model:
        if row.id == "claude" or row.family != "claude":
            continue  # the catch-all: any Claude model takes its conservative rules
        for pattern in row.match:
            model_id = pattern.rstrip("*") + ("-20250101" if pattern.endswith("*") else "")
            enforced = claude_model(model_id)
            assert enforced is not None, model_id
            assert model_info(model_id) is row, model_id
            assert row.max_output_tokens == enforced.max_output, model_id
            assert (row.sampling, row.thinking) == (enforced.sampling, enforced.thinking), model_id
            assert frozenset(row.effort) <= enforced.effort, model_id
            assert row.structured_outputs == enforced.structured, model_id


def test_rows_are_sane_and_sourced() -> None:
    """Output fits the context window; every row says where its numbers come from."""
    table = model_table()
    assert table is model_table()  # read once
    for row in (table.default, *table.model):
        assert row.max_output_tokens <= row.context_window, row.id
        assert row.source, row.id
        assert row.max_output_nonstreaming is None or (
            row.max_output_nonstreaming <= row.max_output_tokens
        )
    assert len({row.id for row in table.model}) == len(table.model)


def test_non_streaming_default_follows_the_sdk() -> None:
    """Opus 4 and 4.1 get 8192 when not streamed (the SDK refuses more), their max streamed."""
    info = model_info("claude-opus-4-1-20250805")
    assert info.default_output(streaming=False) == 8192
    assert info.default_output(streaming=True) == 32000
    assert model_info("claude-sonnet-4-5").default_output(streaming=False) == 64000


def test_a_bad_table_names_the_key() -> None:
    """A malformed table is refused with the path of the bad value."""
    good = "[default]\nid='x'\nmatch=[]\nsource='s'\ncontext_window=10\nmax_output_tokens=5\n"
    assert isinstance(parse_model_table(good), ModelTable)
    with pytest.raises(ValueError, match=r"model table: .*max_output_tokens"):
        parse_model_table(good.replace("max_output_tokens=5", "max_output_tokens=0"))
    with pytest.raises(ValueError, match=r"thinking"):
        parse_model_table(good + "thinking='sometimes'\n")


def deployment(provider: str, extra: str = "") -> str:
    return (
        f'[[deployment]]\nname = "d"\ngroup = "g"\nprovider = "{provider}"\nmodel = "m"\n'
        f'region = "us-east-1"\n{extra}'
    )


def test_max_output_tokens_is_for_the_providers_that_use_it() -> None:
    """`max_output_tokens` is accepted for anthropic and bedrock, refused elsewhere."""
    for provider in ("anthropic", "bedrock"):
        config = parse_config(deployment(provider, "max_output_tokens = 9000"))
        assert config.deployment[0].max_output_tokens == 9000
    with pytest.raises(ConfigError, match="max_output_tokens"):
        parse_config(deployment("openai", "max_output_tokens = 9000"))
    with pytest.raises(ConfigError, match="max_output_tokens"):
        parse_config(deployment("anthropic", "max_output_tokens = 0"))
