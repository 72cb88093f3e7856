"""Request bodies for POST /<mode>/sources, drawn from a weighted payload mix (seeded)."""

from __future__ import annotations

import random
from typing import Any, Final

# kind -> approximate extra bytes; the API accepts up to 16 extra fields and OFFLOAD_MAX_BODY_BYTES (16 KiB)
PAYLOAD_KINDS: Final = {"small": 0, "medium": 1_024, "large": 8_192}


def parse_mix(spec: str) -> dict[str, float]:
    """Parse "small=8,medium=2" (or "small") into normalised weights; ValueError with a one-line message."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kind, _, weight_text = part.partition("=")
        kind = kind.strip()
        if kind not in PAYLOAD_KINDS:
            raise ValueError(
                f"unknown payload kind {kind!r} in --payload-mix (use {', '.join(PAYLOAD_KINDS)})"
            )
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ValueError(f"bad weight {weight_text!r} in --payload-mix (use kind=number)") from None
        if weight < 0:
            raise ValueError(f"negative weight for {kind!r} in --payload-mix")
        weights[kind] = weights.get(kind, 0.0) + weight
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("--payload-mix needs at least one kind with a positive weight (e.g. small=1)")
    return {kind: w / total for kind, w in weights.items()}


class PayloadMaker:
    """Makes bodies for one user: unique user ids and names, extra bytes by the drawn kind."""

    def __init__(self, mix: dict[str, float], seed: int, prefix: str) -> None:
        self._kinds = list(mix)
        self._weights = [mix[k] for k in self._kinds]
        self._rng = random.Random(seed)
        self._prefix = prefix
        self._n = 0
        # bodies differ only in ids; the padding is built once per kind
        self._padding = {k: "x" * n for k, n in PAYLOAD_KINDS.items()}

    def make(self) -> dict[str, Any]:
        """The next request body."""
        self._n += 1
        kind = self._kinds[0] if len(self._kinds) == 1 else self._rng.choices(self._kinds, self._weights)[0]
        body: dict[str, Any] = {
            "user_id": f"{self._prefix}-u{self._n % 1000}",
            "name": f"{self._prefix}-{self._n}",
        }
        if PAYLOAD_KINDS[kind]:
            body["kind"] = kind
            body["description"] = self._padding[kind]
        return body
