"""Encoding of bus payloads: MessagePack via msgspec, typed on decode.

msgspec decodes straight into our dataclasses and validates types on the way, so a malformed
payload fails at the edge (and is parked as poison) instead of deep in the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import msgspec

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decoder(kind: type[T]) -> Callable[[bytes], T]:
    """A function bytes -> ``kind``; raises ``msgspec.DecodeError``/``ValidationError`` on bad input."""
    # msgspec runs a dataclass's __post_init__ and reports its errors as ValidationError, so domain
    # rules (a stop on the wrong side…) are enforced on the way in too. The bound method itself, no
    # wrapper: it runs once per message on the consumer's hot path.
    return cast("Callable[[bytes], T]", msgspec.msgpack.Decoder(kind).decode)


json_encoder = msgspec.json.Encoder()


def to_json(value: Any) -> bytes:
    return json_encoder.encode(value)
