"""Deterministic seeded conversations, with many placed exactly on window edges and on shared instants.

Every simulator renders the same neutral model in its vendor's wire format, so tests can compare any
export with the ground truth of the data set that produced it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_START = datetime(2026, 11, 17, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Conversation:
    """Vendor-neutral conversation; simulators map the fields to their own names and enums."""

    index: int
    created: datetime
    updated: datetime
    #: Index into the vendor's status list (simulators pick ``statuses[status % len]``) unless overridden.
    status: int
    channel: int
    direction: int
    duration: int
    agent: int
    user: int
    turns: int
    rating: int
    in_progress: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def edge_instants(start: datetime, span: timedelta, every: timedelta = timedelta(hours=1)) -> list[datetime]:
    """The window edges inside ``[start, start + span)`` for windows of width ``every``."""
    out, t = [], start
    while t < start + span:
        out.append(t)
        t += every
    return out


def generate(
    n: int,
    *,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    span: timedelta = timedelta(days=3),
    precision: timedelta = timedelta(microseconds=1),
    edge_fraction: float = 0.15,
    tie_fraction: float = 0.10,
    edge_every: timedelta = timedelta(hours=1),
    in_progress_fraction: float = 0.0,
) -> list[Conversation]:
    """``n`` conversations over ``[start, start + span)``, sorted by creation time then index.

    - ``edge_fraction`` of them start exactly on an edge of ``edge_every``-wide windows (and a few a
      ``precision`` step before or after one), the places where half-open windows go wrong;
    - ``tie_fraction`` share an instant with the conversation generated before them, where cursors
      without a tie-breaker go wrong;
    - timestamps are truncated to ``precision`` (a vendor with whole-second times passes 1 s).
    """
    rng = random.Random(seed)
    edges = edge_instants(start, span, edge_every)
    step = precision
    out: list[Conversation] = []
    last: datetime | None = None
    span_us = int(span / timedelta(microseconds=1))
    for i in range(n):
        r = rng.random()
        if last is not None and r < tie_fraction:
            created = last
        elif r < tie_fraction + edge_fraction:
            edge = rng.choice(edges)
            created = edge + rng.choice((timedelta(0), timedelta(0), timedelta(0), -step, step))
            if not start <= created < start + span:
                created = edge
        else:
            created = start + timedelta(microseconds=rng.randrange(span_us))
        created = _truncate(created, precision)
        last = created
        duration = rng.randint(5, 1800)
        updated = _truncate(created + timedelta(seconds=duration + rng.randint(0, 3600)), precision)
        out.append(
            Conversation(
                index=i,
                created=created,
                updated=updated,
                status=rng.randrange(1 << 16),
                channel=rng.randrange(1 << 16),
                direction=rng.randrange(2),
                duration=duration,
                agent=rng.randrange(5),
                user=rng.randrange(1000),
                turns=rng.randint(1, 40),
                rating=rng.randint(1, 5),
                in_progress=rng.random() < in_progress_fraction,
            )
        )
    out.sort(key=lambda c: (c.created, c.index))
    return out


def _truncate(ts: datetime, precision: timedelta) -> datetime:
    p = precision // timedelta(microseconds=1)
    if p <= 1:
        return ts
    us = (ts - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=us - us % p)
