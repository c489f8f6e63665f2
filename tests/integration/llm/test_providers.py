"""Each provider through its official SDK against a local server speaking its format: answers
streamed and not, usage read from the answer, 429 with Retry-After, timeouts, keys never shown."""

from __future__ import annotations

import json
import logging

import pytest
from fake_llm import FakeLlm, Scripted, gullible_brain
from llm_samples import make_news, make_signal
from pydantic import SecretStr

from tradesignals.domain.research import EXPLANATION, Fallback
from tradesignals.llm.prompt import build_prompt
from tradesignals.llm.providers import ProviderError, Reply, build_provider, cost_usd

pytestmark = pytest.mark.integration

KEY = "sk-test-DO-NOT-LEAK-4242"
PROVIDERS = ("openai", "anthropic", "perplexity")


def provider(fake: FakeLlm, kind: str, **kw: object):  # type: ignore[no-untyped-def]
    url = fake.url if kind == "anthropic" else fake.openai_url
    return build_provider(kind, api_key=SecretStr(KEY), base_url=url, **kw)  # type: ignore[arg-type]


def prompt():  # type: ignore[no-untyped-def]
    return build_prompt(EXPLANATION, make_signal(), [make_news(1, "Acme wins a contract")])


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("kind", PROVIDERS)
async def test_answer_and_usage_through_the_sdk(fake: FakeLlm, kind: str, stream: bool) -> None:
    p = provider(fake, kind, stream=stream)
    pr = prompt()
    reply = await p.complete(pr)
    await p.close()
    expected = gullible_brain(pr.system, pr.user)
    assert reply.text == expected
    assert json.loads(reply.text)["citations"] == ["t:1"]
    assert reply.input_tokens == (len(pr.system) + len(pr.user)) // 4
    assert reply.output_tokens == len(expected) // 4
    [body], [headers] = fake.requests, fake.headers
    assert body.get("stream", False) is stream
    if kind == "anthropic":
        # the key as the SDK sends it (x-api-key in older SDKs, a bearer token in this one)
        assert KEY in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
        assert "anthropic-version" in headers and body["system"] == pr.system
        assert body["messages"] == [{"role": "user", "content": pr.user}]
    else:
        assert headers["authorization"] == f"Bearer {KEY}"
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        # OpenAI is asked for usage on the stream; Perplexity sends it unasked (and takes no stream_options)
        assert ("stream_options" in body) is (stream and kind == "openai")
    assert body["model"] == p.model


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_429_is_retried_after_retry_after(fake: FakeLlm, kind: str) -> None:
    fake.script.append(Scripted(status=429, headers={"Retry-After": "1"}))
    p = provider(fake, kind, max_retries=2)
    reply = await p.complete(prompt())
    await p.close()
    assert json.loads(reply.text)["citations"] == ["t:1"]
    assert len(fake.requests) == 2
    assert fake.times[1] - fake.times[0] >= 0.9  # waited as told, not the SDK's own short back-off


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_429_past_the_retries_is_rate_limited(fake: FakeLlm, kind: str) -> None:
    fake.script += [Scripted(status=429, headers={"Retry-After": "0"})] * 2
    p = provider(fake, kind, max_retries=1)
    with pytest.raises(ProviderError) as err:
        await p.complete(prompt())
    await p.close()
    assert err.value.reason is Fallback.RATE_LIMITED and len(fake.requests) == 2


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_a_slow_answer_times_out(fake: FakeLlm, kind: str) -> None:
    fake.script.append(Scripted(delay_s=2.0))
    p = provider(fake, kind, timeout_s=0.3, max_retries=0)
    with pytest.raises(ProviderError) as err:
        await p.complete(prompt())
    await p.close()
    assert err.value.reason is Fallback.TIMEOUT


async def test_a_server_error_is_a_provider_error(fake: FakeLlm) -> None:
    fake.script.append(Scripted(status=500))
    p = provider(fake, "anthropic", max_retries=0)
    with pytest.raises(ProviderError) as err:
        await p.complete(prompt())
    await p.close()
    assert err.value.reason is Fallback.PROVIDER_ERROR and "500" in str(err.value)


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_the_key_is_never_logged_nor_shown(
    fake: FakeLlm, kind: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDKs and httpx log requests at debug
    fake.script += [Scripted(status=429, headers={"Retry-After": "0"}), Scripted(status=401)]
    p = provider(fake, kind, max_retries=1)
    with pytest.raises(ProviderError) as err:
        await p.complete(prompt())
    await p.complete(prompt())
    await p.close()
    out = capsys.readouterr()
    assert caplog.records  # something was logged, and none of it holds the key
    for text in (caplog.text, out.out, out.err, repr(p), str(err.value)):
        assert KEY not in text


def test_settings_never_show_the_keys() -> None:
    from tradesignals.config import ConfigError, load_settings

    s = load_settings(llm_provider="openai", openai_api_key=KEY)
    assert KEY not in repr(s) and KEY not in str(s.model_dump())
    with pytest.raises(ConfigError) as err:
        load_settings(llm_provider="openai", openai_api_key=KEY, llm_timeout_s=-1)
    assert KEY not in str(err.value)


def test_cost_from_the_price_table() -> None:
    prices = {"gpt-4o-mini": (0.15, 0.60)}
    assert cost_usd(prices, "gpt-4o-mini", Reply("", 1_000_000, 500_000)) == pytest.approx(0.45)
    assert cost_usd(prices, "unpriced", Reply("", 10, 10)) is None
