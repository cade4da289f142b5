"""A feed with resent events, as producers that retry without idempotence make it."""

from __future__ import annotations

import random
from collections.abc import Sequence

from graphstore import Interaction


def with_resends(
    events: Sequence[Interaction], fraction: float, seed: int, also: Sequence[Interaction] = ()
) -> list[Interaction]:
    """``events`` with a seeded ``fraction`` of them, and every event of ``also`` (sent
    earlier), sent again: same event, so same event id, later in the feed than the original."""
    rng = random.Random(seed)
    n = len(events)
    keyed = [(float(k), e) for k, e in enumerate(events)]
    for k in rng.sample(range(n), round(fraction * n)):
        keyed.append((rng.uniform(k, n), events[k]))  # after its original
    keyed += [(rng.uniform(0, n), e) for e in also]
    keyed.sort(key=lambda pair: pair[0])
    return [e for _, e in keyed]
