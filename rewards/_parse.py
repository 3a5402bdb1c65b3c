"""Parse each completion once per batch, however many terms read it.

TRL calls every reward function on the same batch in turn, and most terms need the same parse
(format, boxes and verdict all parse the locate answer). Parsing dominates their cost, so parses
are memoised in a bounded LRU keyed on ``(text, stage, protocol fingerprint)``. The fingerprint is
the protocol's parse-relevant fields, computed once per batch, so two equal configs share entries
and a config edited between batches never reads a parse made under its old settings.

Cached :class:`~zoomin.protocol.Parsed` objects are shared between terms: treat them as read-only.
Texts longer than ``MAX_CACHED_CHARS`` are parsed without caching so that a batch of megabyte
outputs cannot pin gigabytes in the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from zoomin.protocol import Parsed, ProtocolConfig, Stage

MAX_CACHED_CHARS = 1 << 16
CACHE_SIZE = 1 << 13
"""Comfortably more than one GRPO batch per process (batch size x generations)."""


def fingerprint(protocol: ProtocolConfig) -> tuple:
    """Everything :meth:`ProtocolConfig.parse` depends on, as a hashable key."""
    return (
        type(protocol),
        protocol.think_tag,
        protocol.boxes_tag,
        protocol.verdict_tag,
        protocol.real_word,
        protocol.fake_word,
        tuple(protocol.real_aliases),
        tuple(protocol.fake_aliases),
        protocol.max_boxes,
    )


def parse_all(protocol: ProtocolConfig, texts: Sequence[str | None], stage: Stage) -> list[Parsed]:
    """``protocol.parse(text, stage)`` for each text, memoised across calls."""
    keyed = _Keyed(protocol)
    return [
        _parse_cached(t, stage, keyed) if t is not None and len(t) <= MAX_CACHED_CHARS else protocol.parse(t, stage)
        for t in texts
    ]


class _Keyed:
    """A protocol that hashes and compares by its fingerprint, so it can be part of a cache key
    while a miss still parses with the caller's own (live) protocol."""

    __slots__ = ("key", "hash", "protocol")

    def __init__(self, protocol: ProtocolConfig) -> None:
        self.protocol = protocol
        self.key = fingerprint(protocol)
        self.hash = hash(self.key)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Keyed) and self.key == other.key


@lru_cache(maxsize=CACHE_SIZE)
def _parse_cached(text: str, stage: Stage, keyed: _Keyed) -> Parsed:
    return keyed.protocol.parse(text, stage)


def clear_cache() -> None:
    """Forget every memoised parse (benchmarks and tests start cold with it)."""
    _parse_cached.cache_clear()
