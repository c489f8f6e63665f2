"""A local LLM on 127.0.0.1 speaking OpenAI Chat Completions and Anthropic Messages, streamed or not.

Wire formats as documented by the providers: Chat Completions (``POST /v1/chat/completions``;
streamed as ``data: {chat.completion.chunk}`` server-sent events ending ``data: [DONE]``, the usage
on a last chunk with empty ``choices`` when ``stream_options.include_usage`` — Perplexity style,
on the last content chunk, without it) and Messages (``POST /v1/messages``; streamed as named
events ``message_start`` … ``message_stop``, input tokens on ``message_start``, cumulative output
tokens on ``message_delta``). Errors in each provider's error shape; 429 with ``Retry-After``.

The fake's "model" is deliberately gullible: it **obeys** "ignore previous instructions" when that
text reaches its instruction channel — the system prompt, or the user message outside the
``<data>`` … ``</data>`` section — and then answers "BUY". Otherwise it answers from the data
section: an explanation citing every offered news id, or one research claim per item. So a prompt
that let news into the instructions fails the injection test (``test_fake_obeys_injection…``
shows the fake does obey when that happens).

Also used by ``bench/explain.py`` (our code's overhead over a local model).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INJECTION = re.compile(r"ignore (all )?previous instructions", re.IGNORECASE)
_DATA = re.compile(r"<data>(.*?)</data>", re.DOTALL)


def instruction_channel(system: str, user: str) -> str:
    """What the fake reads as instructions: the system prompt and the user text outside <data>."""
    return system + "\n" + _DATA.sub("", user)


def gullible_brain(system: str, user: str) -> str:
    """The fake model's answer (JSON text) to one request."""
    research = "research brief" in system
    m = _DATA.search(user)
    data: dict[str, Any] = json.loads(m.group(1)) if m else {"news": [], "signal": {"symbol": "?"}}
    ids = [n["id"] for n in data.get("news", [])]
    if INJECTION.search(instruction_channel(system, user)):
        if research:
            return json.dumps({"claims": [{"text": "BUY", "citations": ids[:1]}]})
        return json.dumps({"text": "BUY", "citations": []})
    if research:
        claims = [
            {"text": f"Item {i + 1} reads {n['sentiment']}.", "citations": [n["id"]]}
            for i, n in enumerate(data["news"])
        ]
        return json.dumps({"claims": claims})
    s = data["signal"]
    text = f"{s['direction'].title()} {s['symbol']}: stop {s['stop']}, first target {s['targets'][0]}."
    if ids:
        text += " News: " + " ".join(f"[{i}]" for i in ids)
    return json.dumps({"text": text, "citations": ids})


@dataclass
class Scripted:
    """One scripted answer: an HTTP error, a delay, or a raw text replacing the brain's."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    text: str | None = None


class FakeLlm:
    """The server; ``script`` answers the next requests in order, then ``brain`` answers."""

    def __init__(self, brain: Callable[[str, str], str] = gullible_brain, chunk: int = 7) -> None:
        self.brain = brain
        self.chunk = chunk
        self.script: list[Scripted] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                fake.times.append(time.monotonic())
                step = fake.script.pop(0) if fake.script else Scripted()
                if step.delay_s:
                    time.sleep(step.delay_s)
                anthropic = self.path.rstrip("/").endswith("/messages")
                if step.status != 200:
                    self._error(step, anthropic)
                    return
                if anthropic:
                    system = body.get("system", "")
                    user = body["messages"][-1]["content"]
                else:
                    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
                    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
                text = step.text if step.text is not None else fake.brain(system, user)
                tokens_in, tokens_out = (len(system) + len(user)) // 4, max(1, len(text) // 4)
                if anthropic:
                    self._anthropic(body, text, tokens_in, tokens_out)
                else:
                    self._openai(body, text, tokens_in, tokens_out)

            def _send(
                self, status: int, payload: bytes, ctype: str, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def _error(self, step: Scripted, anthropic: bool) -> None:
                kind = "rate_limit_error" if step.status == 429 else "api_error"
                err: dict[str, Any] = (
                    {"type": "error", "error": {"type": kind, "message": "scripted"}}
                    if anthropic
                    else {"error": {"message": "scripted", "type": kind, "code": None, "param": None}}
                )
                self._send(step.status, json.dumps(err).encode(), "application/json", step.headers)

            def _stream(self, events: list[bytes]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for e in events:
                    self.wfile.write(e)
                    self.wfile.flush()
                self.close_connection = True

            def _openai(self, body: dict[str, Any], text: str, tin: int, tout: int) -> None:
                usage = {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
                base = {"id": "chatcmpl-fake", "created": 1, "model": body["model"]}
                if not body.get("stream"):
                    msg = {
                        **base,
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                                "logprobs": None,
                            }
                        ],
                        "usage": usage,
                    }
                    self._send(200, json.dumps(msg).encode(), "application/json")
                    return
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                chunks: list[dict[str, Any]] = [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ]
                chunks += [
                    {"index": 0, "delta": {"content": text[i : i + fake.chunk]}, "finish_reason": None}
                    for i in range(0, len(text), fake.chunk)
                ]
                chunks.append({"index": 0, "delta": {}, "finish_reason": "stop"})
                events = []
                for n, c in enumerate(chunks):
                    chunk: dict[str, Any] = {**base, "object": "chat.completion.chunk", "choices": [c]}
                    if not include_usage and n == len(chunks) - 1:
                        chunk["usage"] = usage  # Perplexity: usage rides on the last chunk
                    events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                if include_usage:
                    last = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                    events.append(b"data: " + json.dumps(last).encode() + b"\n\n")
                events.append(b"data: [DONE]\n\n")
                self._stream(events)

            def _anthropic(self, body: dict[str, Any], text: str, tin: int, tout: int) -> None:
                message = {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": tin, "output_tokens": tout},
                }
                if not body.get("stream"):
                    self._send(200, json.dumps(message).encode(), "application/json")
                    return

                def ev(name: str, data: dict[str, Any]) -> bytes:
                    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

                start = {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": tin, "output_tokens": 1},
                }
                events = [
                    ev("message_start", {"type": "message_start", "message": start}),
                    ev(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": 0,
                            "content_block": {"type": "text", "text": ""},
                        },
                    ),
                    ev("ping", {"type": "ping"}),
                ]
                events += [
                    ev(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": text[i : i + fake.chunk]},
                        },
                    )
                    for i in range(0, len(text), fake.chunk)
                ]
                events += [
                    ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ev(
                        "message_delta",
                        {
                            "type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": tout},
                        },
                    ),
                    ev("message_stop", {"type": "message_stop"}),
                ]
                self._stream(events)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
