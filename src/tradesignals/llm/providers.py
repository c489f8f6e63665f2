"""LLM providers through their official SDKs: OpenAI, Anthropic, and Perplexity (OpenAI's SDK).

Each provider turns a ``Prompt`` (instructions, data) into the model's text plus its token usage,
streamed or not. Whatever goes wrong becomes one ``ProviderError`` with a ``Fallback`` reason —
``timeout`` (the SDK's per-request timeout, or our overall deadline over its retries),
``rate_limited`` (429s past the SDK's retries, each honouring ``Retry-After``) or
``provider_error`` — so the sidecar falls back to the template and counts it, never crashes.

Keys are handed over as ``SecretStr`` and read only when the SDK client is made: no repr, log
line or error message of ours contains one (a test greps the logs).

Perplexity speaks the Chat Completions format at its own base URL, so it is the OpenAI provider
with that URL; it reports usage on its chunks without ``stream_options``, which it does not take.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr

from tradesignals.domain.research import Fallback, Usage
from tradesignals.llm.prompt import Prompt

OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
PERPLEXITY_URL = "https://api.perplexity.ai"

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest", "perplexity": "sonar"}


class ProviderError(Exception):
    """A call that gave no usable text; ``reason`` is the counted fallback (``domain.research.Fallback``)."""

    def __init__(self, reason: Fallback, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    input_tokens: int
    output_tokens: int


class Provider(Protocol):
    """One LLM behind one SDK; ``name`` and ``model`` go into the cache key and the usage row."""

    name: str
    model: str

    async def complete(self, prompt: Prompt) -> Reply: ...

    async def close(self) -> None: ...


def cost_usd(prices: Mapping[str, tuple[float, float]], model: str, reply: Reply) -> float | None:
    """USD for a reply: (input, output) USD per million tokens from the settings' table; None unpriced."""
    price = prices.get(model)
    if price is None:
        return None
    return (reply.input_tokens * price[0] + reply.output_tokens * price[1]) / 1_000_000


def usage_of(
    provider: Provider, reply: Reply, prices: Mapping[str, tuple[float, float]], started: float
) -> Usage:
    return Usage(
        provider=provider.name,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        cost_usd=cost_usd(prices, provider.model, reply),
        latency_ms=(time.perf_counter() - started) * 1000,
    )


def _classify(
    exc: BaseException,
    timeouts: tuple[type[BaseException], ...],
    rate_limited: tuple[type[BaseException], ...],
) -> ProviderError:
    """An SDK's exception (each SDK has its own APIError family) as one counted reason."""
    if isinstance(exc, timeouts):
        return ProviderError(Fallback.TIMEOUT, type(exc).__name__)
    if isinstance(exc, rate_limited):
        return ProviderError(Fallback.RATE_LIMITED, f"429 after retries ({type(exc).__name__})")
    status = getattr(exc, "status_code", None)
    detail = f"{type(exc).__name__}" + (f" {status}" if status is not None else "")
    return ProviderError(Fallback.PROVIDER_ERROR, detail)


class _SdkProvider:
    """What both SDK providers share: settings, the overall deadline and the error mapping.

    Each SDK is imported by its provider's constructor, not by this module: the two SDKs take ~5 s
    to import on a small machine, which a node using the template (the demo's default) never needs.
    """

    name: str
    _errors: tuple[type[BaseException], ...]  # the SDK's base error, and TimeoutError
    _timeouts: tuple[type[BaseException], ...]
    _rate_limited: tuple[type[BaseException], ...]

    def __init__(
        self, *, model: str, timeout_s: float, max_retries: int, max_tokens: int, stream: bool
    ) -> None:
        self.model = model
        self.stream = stream
        self.max_tokens = max_tokens
        # The SDK's timeout is per attempt; this bounds the attempts and their back-offs together.
        self.deadline_s = timeout_s * (max_retries + 1) + 5.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r})"

    async def complete(self, prompt: Prompt) -> Reply:
        try:
            return await asyncio.wait_for(self._complete(prompt), timeout=self.deadline_s)
        except self._errors as exc:
            raise _classify(exc, self._timeouts, self._rate_limited) from None

    async def _complete(self, prompt: Prompt) -> Reply:
        raise NotImplementedError


class OpenAIChatProvider(_SdkProvider):
    """Chat Completions (``/chat/completions``) through ``openai.AsyncOpenAI``."""

    def __init__(
        self,
        *,
        api_key: SecretStr,
        model: str,
        base_url: str = OPENAI_URL,
        name: str = "openai",
        timeout_s: float = 20.0,
        max_retries: int = 2,
        max_tokens: int = 800,
        stream: bool = True,
    ) -> None:
        super().__init__(
            model=model, timeout_s=timeout_s, max_retries=max_retries, max_tokens=max_tokens, stream=stream
        )
        import openai

        self.name = name
        self._errors = (openai.OpenAIError, TimeoutError)
        self._timeouts = (openai.APITimeoutError, TimeoutError)
        self._rate_limited = (openai.RateLimitError,)
        self._client = openai.AsyncOpenAI(
            api_key=api_key.get_secret_value(), base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def _complete(self, prompt: Prompt) -> Reply:
        messages: Any = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        if not self.stream:
            r = await self._client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=0
            )
            text = r.choices[0].message.content if r.choices else None
            u = r.usage
            return Reply(text or "", u.prompt_tokens if u else 0, u.completion_tokens if u else 0)
        extra: dict[str, Any] = {}
        if self.name == "openai":
            extra["stream_options"] = {"include_usage": True}
        parts: list[str] = []
        tokens_in = tokens_out = 0
        chunks = await self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=self.max_tokens,
            temperature=0,
            stream=True,
            **extra,
        )
        async for chunk in chunks:
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
            if chunk.usage is not None:  # the last chunk (OpenAI), or every chunk (Perplexity)
                tokens_in, tokens_out = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        return Reply("".join(parts), tokens_in, tokens_out)

    async def close(self) -> None:
        await self._client.close()


class AnthropicProvider(_SdkProvider):
    """Anthropic Messages (``/v1/messages``) through ``anthropic.AsyncAnthropic``."""

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: SecretStr,
        model: str,
        base_url: str = ANTHROPIC_URL,
        timeout_s: float = 20.0,
        max_retries: int = 2,
        max_tokens: int = 800,
        stream: bool = True,
    ) -> None:
        super().__init__(
            model=model, timeout_s=timeout_s, max_retries=max_retries, max_tokens=max_tokens, stream=stream
        )
        import anthropic

        self._errors = (anthropic.AnthropicError, TimeoutError)
        self._timeouts = (anthropic.APITimeoutError, TimeoutError)
        self._rate_limited = (anthropic.RateLimitError,)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key.get_secret_value(), base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def _complete(self, prompt: Prompt) -> Reply:
        messages: Any = [{"role": "user", "content": prompt.user}]
        if not self.stream:
            r = await self._client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=prompt.system,
                messages=messages,
            )
            text = "".join(getattr(b, "text", "") for b in r.content if b.type == "text")
            return Reply(text, r.usage.input_tokens, r.usage.output_tokens)
        parts: list[str] = []
        tokens_in = tokens_out = 0
        events = await self._client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            system=prompt.system,
            messages=messages,
            stream=True,
        )
        async for event in events:
            if event.type == "message_start":
                tokens_in = event.message.usage.input_tokens
                tokens_out = event.message.usage.output_tokens
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                parts.append(event.delta.text)
            elif event.type == "message_delta":
                tokens_out = event.usage.output_tokens  # cumulative, per the Messages stream format
        return Reply("".join(parts), tokens_in, tokens_out)

    async def close(self) -> None:
        await self._client.close()


def build_provider(
    kind: str,
    *,
    api_key: SecretStr,
    model: str | None = None,
    base_url: str | None = None,
    timeout_s: float = 20.0,
    max_retries: int = 2,
    max_tokens: int = 800,
    stream: bool = True,
) -> Provider:
    """The provider ``kind`` names (openai | anthropic | perplexity); ``ValueError`` for another."""
    chosen = model or DEFAULT_MODELS.get(kind, "")
    common: dict[str, Any] = {
        "api_key": api_key,
        "model": chosen,
        "timeout_s": timeout_s,
        "max_retries": max_retries,
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if kind == "openai":
        return OpenAIChatProvider(base_url=base_url or OPENAI_URL, **common)
    if kind == "perplexity":
        return OpenAIChatProvider(base_url=base_url or PERPLEXITY_URL, name="perplexity", **common)
    if kind == "anthropic":
        return AnthropicProvider(base_url=base_url or ANTHROPIC_URL, **common)
    raise ValueError(f"unknown LLM provider {kind!r}; expected openai, anthropic or perplexity")
