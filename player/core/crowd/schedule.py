"""Who comes when, stays how long, and what competes: arrival processes, viewing times, bulk
flows and the TCP model, from the short texts the command line takes.

- arrivals: ``fixed:interval=S`` (one client every S seconds, the first at 0; S = 0: all at
  once) or ``poisson:rate=R`` (a Poisson process of R clients per second: exponential gaps,
  the first client at 0);
- viewing time: ``S`` (every client leaves S session seconds after it started, if still
  downloading) or ``exp:mean=S`` (exponential, mean S);
- bulk flows: ``start:stop[,start:stop...]`` in bottleneck seconds, ``start:`` for a flow
  that runs until the last client is done;
- TCP model: ``on`` or ``rtt=S,iw=BYTES,rto=S,queue=BYTES`` (`TcpModel`'s fields).

Seeded: the same text, count and seed give the same times. Bad text is one `InputError` line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from netem.errors import InputError
from player.core.crowd.spec import BulkFlow, TcpModel


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{what} must be finite, got {text!r}")
    return v


def _params(text: str, what: str, known: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            raise InputError(f"{what}: expected {', '.join(k + '=...' for k in known)}, got {item!r}")
        out[key] = _number(value, f"{what} {key}")
    return out


@dataclass(frozen=True)
class Arrivals:
    """An arrival process: `fixed` (every `value` seconds) or `poisson` (`value` per second)."""

    kind: str
    value: float

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        """Arrival times (s) of `n` clients, the first at 0."""
        if self.kind == "fixed":
            return self.value * np.arange(n, dtype=np.float64)
        gaps = np.random.default_rng(seed).exponential(1.0 / self.value, size=max(n - 1, 0))
        return np.concatenate([[0.0], np.cumsum(gaps)])[:n]


def parse_arrivals(text: str | None) -> Arrivals:
    """`fixed:interval=S` or `poisson:rate=R` (default: everyone at 0)."""
    if not text:
        return Arrivals("fixed", 0.0)
    kind, _, rest = text.partition(":")
    if kind == "fixed":
        v = _params(rest, "--arrivals fixed", ("interval",)).get("interval")
        if v is None or v < 0:
            raise InputError(f"--arrivals fixed:interval=S needs S >= 0 seconds, got {text!r}")
        return Arrivals("fixed", v)
    if kind == "poisson":
        v = _params(rest, "--arrivals poisson", ("rate",)).get("rate")
        if v is None or v <= 0:
            raise InputError(f"--arrivals poisson:rate=R needs a rate R > 0 clients per second, got {text!r}")
        return Arrivals("poisson", v)
    raise InputError(f"--arrivals must be fixed:interval=S or poisson:rate=R, got {text!r}")


@dataclass(frozen=True)
class Viewing:
    """How long viewers stay: `fixed` seconds or `exp` with that mean; None: to the end."""

    kind: str
    value: float

    def times(self, n: int, seed: int = 0) -> np.ndarray:
        if self.kind == "fixed":
            return np.full(n, self.value)
        return np.random.default_rng(seed + 7919).exponential(self.value, size=n)


def parse_watch(text: str | None) -> Viewing | None:
    if not text:
        return None
    if text.startswith("exp:"):
        v = _params(text[4:], "--watch exp", ("mean",)).get("mean")
        if v is None or v <= 0:
            raise InputError(f"--watch exp:mean=S needs S > 0 seconds, got {text!r}")
        return Viewing("exp", v)
    v = _number(text, "--watch")
    if v <= 0:
        raise InputError(f"--watch must be positive seconds, got {text!r}")
    return Viewing("fixed", v)


def parse_bulk(text: str | None) -> list[BulkFlow]:
    """`start:stop[,start:stop...]`; an empty stop runs until the last client is done."""
    out = []
    for item in filter(None, (x.strip() for x in (text or "").split(","))):
        a, colon, b = item.partition(":")
        if not colon:
            raise InputError(f"--bulk expects start:stop (seconds), got {item!r}")
        start = _number(a, "--bulk start")
        stop = _number(b, "--bulk stop") if b.strip() else math.inf
        if start < 0 or stop <= start:
            raise InputError(f"--bulk {item!r}: times must satisfy 0 <= start < stop")
        out.append(BulkFlow(start, stop))
    return out


def parse_tcp(text: str | None) -> TcpModel | None:
    """`on` (the defaults) or `rtt=S,iw=BYTES,rto=S,queue=BYTES`; None or `off`: processor sharing."""
    if not text or text == "off":
        return None
    if text == "on":
        return TcpModel()
    p = _params(text, "--tcp", ("rtt", "iw", "rto", "queue"))
    base = TcpModel()
    return TcpModel(rtt_s=p.get("rtt", base.rtt_s), initial_window_bytes=int(p.get("iw", base.initial_window_bytes)),
                    rto_s=p.get("rto", base.rto_s), queue_bytes=int(p.get("queue", base.queue_bytes)))
