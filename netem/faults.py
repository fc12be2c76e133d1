"""Fault injection for the emulated edge and the shaping proxy: a small spec language.

One spec is ``KIND`` or ``KIND:KEY=VALUE[,KEY=VALUE...]`` (``--fault``, repeatable):

=================  ===================================================  =========================
kind               keys (required first; ``[...]`` optional)             effect
=================  ===================================================  =========================
``5xx``            ``[p=1, status=503, path, from, to, edge]``           answer `status` (500–599)
``404``            ``[p=1, path, from, to, edge]``                       answer 404
``stall``          ``after=BYTES, for=S [, p, path, from, to, edge]``   pause the body after BYTES
``reset``          ``[after=0, p, path, from, to, edge]``               TCP RST after BYTES of body
``slow-first-byte````delay=S [, p, path, from, to, edge]``              extra wait before headers
``outage``         ``from=T, (to=T | for=S) [, edge]``                   link capacity 0 in window
``die``            ``at=T [, edge]``                                     edge closes everything at T
``license``        ``[p=1, status=500, delay=0, path, from, to, edge]`` license request fails/waits
=================  ===================================================  =========================

``license:delay=S`` alone only slows license answers; with ``p`` or ``status`` (or no key at
all) the matching requests also fail with ``status``.

* ``p`` is a probability in [0, 1], drawn per matching request from a generator seeded by
  ``--seed`` and the edge index (the same requests in the same order fail the same way).
* ``path`` is a glob (``fnmatch``; ``*`` also crosses ``/``) matched against the URL path;
  a pattern not starting with ``/`` or ``*`` matches at any directory level (``*/`` is put
  in front). ``license`` defaults to ``/license/*``.
* ``from``/``to``/``at``/``for``/``delay`` are seconds of *trace time* since the edge
  started: at ``--time-scale K`` they pass K times faster on the wall clock.
* ``after`` counts response-body bytes; it takes an integer with an optional ``k``/``M``/
  ``G`` (×10³/10⁶/10⁹) or ``Ki``/``Mi``/``Gi`` (×2¹⁰/2²⁰/2³⁰) suffix.
* ``edge=N`` restricts a fault to edge N (0-based) of ``--edges``; default: every edge.

When several faults match one request: every matching ``slow-first-byte`` adds its delay,
the first matching ``5xx``/``404`` decides the status, and the first matching ``stall``
and ``reset`` apply to the body. A bad spec raises `InputError` naming the field.
"""
from __future__ import annotations

import fnmatch
import math
import random
import re
from dataclasses import dataclass, field

from netem.errors import InputError

KINDS = ("5xx", "404", "stall", "reset", "slow-first-byte", "outage", "die", "license")
_COMMON = {"p", "path", "from", "to", "edge"}
_KEYS = {
    "5xx": _COMMON | {"status"},
    "404": _COMMON,
    "stall": _COMMON | {"after", "for"},
    "reset": _COMMON | {"after"},
    "slow-first-byte": _COMMON | {"delay"},
    "outage": {"from", "to", "for", "edge"},
    "die": {"at", "edge"},
    "license": _COMMON | {"status", "delay"},
}
_REQUIRED = {"stall": ("after", "for"), "slow-first-byte": ("delay",), "outage": ("from",), "die": ("at",)}
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}
MAX_SECONDS = 1e9


@dataclass(frozen=True)
class Fault:
    """One parsed fault spec (times in trace seconds, sizes in bytes)."""

    kind: str
    spec: str
    p: float = 1.0
    path: str | None = None
    start_s: float = 0.0
    end_s: float = math.inf
    edge: int | None = None
    status: int | None = None
    after_bytes: int = 0
    duration_s: float = 0.0  # stall: for=
    delay_s: float = 0.0  # slow-first-byte / license: delay=
    at_s: float | None = None  # die
    fail: bool = True  # license: fail (else only delay)

    def applies_to_edge(self, edge: int) -> bool:
        return self.edge is None or self.edge == edge

    def matches(self, path: str, t_s: float) -> bool:
        if not (self.start_s <= t_s < self.end_s):
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)


def parse(spec: str) -> Fault:
    """Parse one spec; raises `InputError` naming the bad field."""
    where = f"--fault {spec!r}"
    text = spec.strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise InputError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}", where=where)
    params: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not eq or not key:
                raise InputError(f"expected KEY=VALUE, got {item.strip()!r}", where=where)
            if key not in _KEYS[kind]:
                raise InputError(f"field {key!r} is not valid for {kind!r} (valid: {', '.join(sorted(_KEYS[kind]))})",
                                 where=where)
            if key in params:
                raise InputError(f"field {key!r} given twice", where=where)
            params[key] = value.strip()
    for key in _REQUIRED.get(kind, ()):
        if key not in params:
            raise InputError(f"field {key!r} is required for {kind!r}", where=where)
    kw: dict = {}
    if "p" in params:
        p = _number(params["p"], "p", where)
        if not 0.0 <= p <= 1.0:
            raise InputError(f"field 'p' must be a probability in [0, 1], got {params['p']!r}", where=where)
        kw["p"] = p
    if "path" in params:
        pat = params["path"]
        if not pat:
            raise InputError("field 'path' is empty", where=where)
        kw["path"] = pat if pat.startswith(("/", "*")) else "*/" + pat
    elif kind == "license":
        kw["path"] = "/license/*"
    if "from" in params:
        kw["start_s"] = _seconds(params["from"], "from", where)
    if "to" in params and "for" in params and kind == "outage":
        raise InputError("give 'to' or 'for', not both", where=where)
    if "to" in params:
        kw["end_s"] = _seconds(params["to"], "to", where)
    if kind == "outage":
        if "for" in params:
            kw["end_s"] = kw.get("start_s", 0.0) + _seconds(params["for"], "for", where)
        elif "to" not in params:
            raise InputError("field 'to' (or 'for') is required for 'outage'", where=where)
    if kw.get("end_s", math.inf) <= kw.get("start_s", 0.0):
        raise InputError("field 'to' must be after 'from'", where=where)
    if "edge" in params:
        kw["edge"] = _integer(params["edge"], "edge", where, lo=0, hi=10_000)
    if "status" in params:
        lo, hi = (500, 599) if kind == "5xx" else (400, 599)
        kw["status"] = _integer(params["status"], "status", where, lo=lo, hi=hi)
    elif kind == "5xx":
        kw["status"] = 503
    elif kind == "404":
        kw["status"] = 404
    elif kind == "license":
        kw["status"] = 500
    if "after" in params:
        kw["after_bytes"] = _size(params["after"], "after", where)
    if kind == "stall":
        kw["duration_s"] = _seconds(params["for"], "for", where)
    if "delay" in params:
        kw["delay_s"] = _seconds(params["delay"], "delay", where)
    if "at" in params:
        kw["at_s"] = _seconds(params["at"], "at", where)
    if kind == "license":
        kw["fail"] = "p" in params or "status" in params or "delay" not in params
    return Fault(kind=kind, spec=text, **kw)


def parse_all(specs) -> list[Fault]:
    return [parse(s) for s in (specs or ())]


def _number(value: str, key: str, where: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise InputError(f"field {key!r} must be a number, got {value!r}", where=where) from None
    if not math.isfinite(x):
        raise InputError(f"field {key!r} must be finite, got {value!r}", where=where)
    return x


def _seconds(value: str, key: str, where: str) -> float:
    v = value[:-1] if value.endswith("s") and not value.endswith("ms") else value
    scale = 1.0
    if value.endswith("ms"):
        v, scale = value[:-2], 1e-3
    x = _number(v, key, where) * scale
    if not 0.0 <= x <= MAX_SECONDS:
        raise InputError(f"field {key!r} must be seconds in [0, {MAX_SECONDS:g}], got {value!r}", where=where)
    return x


def _integer(value: str, key: str, where: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"\d{1,9}", value):
        raise InputError(f"field {key!r} must be an integer in [{lo}, {hi}], got {value!r}", where=where)
    n = int(value)
    if not lo <= n <= hi:
        raise InputError(f"field {key!r} must be an integer in [{lo}, {hi}], got {value!r}", where=where)
    return n


def _size(value: str, key: str, where: str) -> int:
    m = re.fullmatch(r"(\d{1,15}(?:\.\d{1,6})?)\s*([kKmMgG]i?)?[bB]?", value)
    if not m:
        raise InputError(f"field {key!r} must be a byte count like 65536, 100k or 1Mi, got {value!r}", where=where)
    n = float(m.group(1)) * _SUFFIX[(m.group(2) or "").lower()]
    if n > 2**50:
        raise InputError(f"field {key!r} is absurdly large: {value!r}", where=where)
    return int(n)


# -- decisions (sans-IO) ------------------------------------------------------------------------
@dataclass
class Decision:
    """What the faults say about one request."""

    status: int | None = None  # answer this error instead of the resource
    delay_s: float = 0.0  # extra trace seconds before the first byte
    stall_after: int | None = None
    stall_s: float = 0.0
    reset_after: int | None = None
    applied: list[str] = field(default_factory=list)


class FaultPlan:
    """The faults of one edge, with a seeded generator for their probabilities."""

    def __init__(self, faults=(), *, seed: int = 0, edge: int = 0) -> None:
        self.edge = edge
        self.faults = [f for f in faults if f.applies_to_edge(edge)]
        self.rng = random.Random(f"abrlab-faults:{seed}:{edge}")

    @property
    def outages(self) -> list[tuple[float, float]]:
        return [(f.start_s, f.end_s) for f in self.faults if f.kind == "outage"]

    @property
    def die_at(self) -> float | None:
        times = [f.at_s for f in self.faults if f.kind == "die"]
        return min(times) if times else None

    def in_outage(self, t_s: float) -> float | None:
        """End of the outage covering trace time t, or None."""
        for a, b in self.outages:
            if a <= t_s < b:
                return b
        return None

    def _hit(self, f: Fault, path: str, t_s: float) -> bool:
        if not f.matches(path, t_s):
            return False
        return f.p >= 1.0 or self.rng.random() < f.p

    def decide(self, path: str, t_s: float) -> Decision:
        """Faults for a content request of `path` arriving at trace time `t_s`."""
        d = Decision()
        for f in self.faults:
            if f.kind == "slow-first-byte" and self._hit(f, path, t_s):
                d.delay_s += f.delay_s
                d.applied.append(f.spec)
            elif f.kind in ("5xx", "404") and d.status is None and self._hit(f, path, t_s):
                d.status = f.status
                d.applied.append(f.spec)
            elif f.kind == "stall" and d.stall_after is None and self._hit(f, path, t_s):
                d.stall_after, d.stall_s = f.after_bytes, f.duration_s
                d.applied.append(f.spec)
            elif f.kind == "reset" and d.reset_after is None and self._hit(f, path, t_s):
                d.reset_after = f.after_bytes
                d.applied.append(f.spec)
        return d

    def decide_license(self, path: str, t_s: float) -> Decision:
        d = Decision()
        for f in self.faults:
            if f.kind == "license" and self._hit(f, path, t_s):
                d.delay_s += f.delay_s
                if d.status is None and f.fail:
                    d.status = f.status
                d.applied.append(f.spec)
        return d
