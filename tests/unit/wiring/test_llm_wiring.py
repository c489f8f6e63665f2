"""TS_LLM_PROVIDER chooses who writes explanations; the template needs nothing, a provider its key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tradesignals.config import ConfigError, load_settings
from tradesignals.llm.providers import PERPLEXITY_URL, AnthropicProvider, OpenAIChatProvider
from tradesignals.wiring import build_llm_provider, build_services


def test_the_template_is_the_default_and_needs_no_key(tmp_path: Path) -> None:
    assert build_llm_provider(load_settings(home=tmp_path)) is None


@pytest.mark.parametrize("kind", ["openai", "anthropic", "perplexity"])
def test_a_provider_without_its_key_is_one_line_naming_the_variable(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ConfigError, match=f"^TS_LLM_PROVIDER={kind} needs TS_{kind.upper()}_API_KEY$"):
        build_llm_provider(load_settings(home=tmp_path, llm_provider=kind))


def test_each_provider_with_its_key(tmp_path: Path) -> None:
    openai = build_llm_provider(load_settings(home=tmp_path, llm_provider="openai", openai_api_key="k1"))
    assert isinstance(openai, OpenAIChatProvider) and openai.model == "gpt-4o-mini"
    pplx = build_llm_provider(
        load_settings(
            home=tmp_path, llm_provider="perplexity", perplexity_api_key="k2", llm_model="sonar-pro"
        )
    )
    assert isinstance(pplx, OpenAIChatProvider) and pplx.name == "perplexity" and pplx.model == "sonar-pro"
    assert str(pplx._client.base_url).rstrip("/") == PERPLEXITY_URL
    claude = build_llm_provider(
        load_settings(home=tmp_path, llm_provider="anthropic", anthropic_api_key="k3")
    )
    assert isinstance(claude, AnthropicProvider)
    for p in (openai, pplx, claude):
        assert p is not None
        asyncio.run(p.close())


def test_unknown_provider_and_bad_prices_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TS_LLM_PROVIDER"):
        load_settings(home=tmp_path, llm_provider="gemini")
    with pytest.raises(ConfigError, match="TS_LLM_PRICES"):
        load_settings(home=tmp_path, llm_prices={"m": (-1.0, 1.0)})


def test_the_explain_role_starts_a_task(tmp_path: Path) -> None:
    async def run() -> list[str]:
        services = await build_services(load_settings(home=tmp_path))
        services.start_roles({"explain"})
        names = [t.get_name() for t in services.tasks]
        await services.close()
        return names

    # the explain task, beside the metrics refresher and the registry heartbeat every process runs (ops); no engine, no API
    assert sorted(asyncio.run(run())) == ["explain", "metrics", "registry"]
