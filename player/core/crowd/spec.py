"""What a crowd is: clients and bulk flows on a bottleneck, and how the bottleneck shares.

A `Bottleneck` is one shared link (a trace) with its clients (`CrowdClient`: a streaming
session with its own content, policy, device, preset, arrival time and viewing time) and
its competing bulk downloads (`BulkFlow`: backlogged from `start_s` to `stop_s`). Its
capacity is shared among the transfers in flight by processor sharing, or by the TCP-like
model of `TcpModel` when one is given. Times are trace seconds from the trace's start
(the bottleneck's clock); the trace wraps, as on the single-session link.

Bad input is one `InputError` line naming the bottleneck and the client or flow.
"""
from __future__ import annotations

import math

import numpy as np
from dataclasses import dataclass, field
from typing import Any, Sequence

from netem.content import Content
from netem.errors import InputError
from netem.trace import Trace
from player.core.device import DeviceProfile
from player.core.presets import SessionPreset, get as get_preset


@dataclass
class CrowdClient:
    """One viewer on a bottleneck."""

    content: Content
    abr: str = "bola"
    abr_params: dict[str, Any] = field(default_factory=dict)
    device: DeviceProfile | None = None
    preset: str | SessionPreset = "default"
    start_s: float = 0.0                 # bottleneck time the session starts (its first request)
    watch_s: float | None = None         # session seconds after which the viewer leaves, if still downloading
    label: dict[str, Any] = field(default_factory=dict)

    def resolved_preset(self) -> SessionPreset:
        return self.preset if isinstance(self.preset, SessionPreset) else get_preset(self.preset)


@dataclass(frozen=True)
class BulkFlow:
    """A competing file download, always backlogged from `start_s` until `stop_s`."""

    start_s: float
    stop_s: float = math.inf


@dataclass(frozen=True)
class TcpModel:
    """A TCP-like share of the bottleneck: window growth and restart after idle.

    Each client keeps one persistent connection; a bulk flow has its own. A transfer moves
    in rounds of one RTT: in slow start it may deliver at most `cwnd` bytes per round (the
    rest of the round it waits for acknowledgements, and its share goes to the others), and
    `cwnd` doubles after every round in which the window, not the link, was the limit. The
    first round in which the link's fair share was the limit ends slow start: from then on
    the connection takes its processor-sharing share (an idealised congestion avoidance).
    A connection that has been idle longer than `rto_s` when its next transfer starts, and
    every new connection (the first request, a bulk flow switching on, a request aborted by
    abandonment), starts again from `initial_window_bytes` (RFC 5681 §4.1 restart, RFC 6928
    initial window of 10 segments). While a bulk flow is on it keeps the bottleneck's queue
    full: every round lasts `rtt_s` plus `queue_bytes` at the trace's mean rate.
    This is the mechanism behind the downward spiral (Huang et al., IMC 2012): a player's
    OFF periods reset its window, a small segment finishes before the window reaches the fair
    share, and the throughput it measures is below what it could have had.
    """

    rtt_s: float = 0.05
    initial_window_bytes: int = 14600
    rto_s: float = 1.0
    queue_bytes: int = 0

    def __post_init__(self) -> None:
        for name in ("rtt_s", "rto_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"TCP model: {name} must be a positive number of seconds, got {v!r}")
        if not (self.initial_window_bytes > 0):
            raise InputError(f"TCP model: initial_window_bytes must be positive, got {self.initial_window_bytes!r}")
        if not (self.queue_bytes >= 0):
            raise InputError(f"TCP model: queue_bytes must be >= 0, got {self.queue_bytes!r}")


@dataclass
class Bottleneck:
    """One shared link: its trace, its clients, its bulk flows and how it shares."""

    trace: Trace
    clients: Sequence[CrowdClient]
    bulk: Sequence[BulkFlow] = ()
    tcp: TcpModel | None = None          # None: processor sharing
    label: dict[str, Any] = field(default_factory=dict)

    def name(self, i: int) -> str:
        return str(self.label.get("name", f"bottleneck {i + 1} ({self.trace.source or self.trace.name})"))

    def validate(self, i: int = 0) -> None:
        """One clear line for a crowd that cannot be run."""
        where = self.name(i)
        if not self.clients:
            raise InputError("a bottleneck needs at least one client", where=where)
        end = float(self.trace.duration_s)
        for j, c in enumerate(self.clients):
            s = c.start_s
            if not (isinstance(s, (int, float)) and math.isfinite(s) and s >= 0):
                raise InputError(f"client {j + 1} starts at {s!r}: a start must be a time >= 0 s", where=where)
            if s >= end:
                raise InputError(f"client {j + 1} starts at {s:g} s, after the trace ends ({end:g} s)", where=where)
            if c.watch_s is not None and not (math.isfinite(c.watch_s) and c.watch_s > 0):
                raise InputError(f"client {j + 1}: viewing time must be positive seconds, got {c.watch_s!r}",
                                 where=where)
            preset = c.resolved_preset()
            link = preset.link
            if not link.latency_advances_trace:
                raise InputError(f"client {j + 1}: preset {preset.name!r} pays its latency outside "
                                 "trace time, which a shared link cannot do; use default, sabre or "
                                 "dashjs-no-fast-switch", where=where)
            if preset.live is not None or preset.fast_switch:
                what = "a live session" if preset.live is not None else "fast switching"
                raise InputError(f"client {j + 1}: preset {preset.name!r} has {what}, which the crowd simulator "
                                 "does not model; use default, sabre or dashjs-no-fast-switch", where=where)
            if link.noise is not None:
                raise InputError(f"client {j + 1}: a link with noisy transfer times cannot be shared", where=where)
        for j, b in enumerate(self.bulk):
            if not (math.isfinite(b.start_s) and b.start_s >= 0) or math.isnan(b.stop_s) or b.stop_s <= b.start_s:
                raise InputError(f"bulk flow {j + 1} ({b.start_s!r}:{b.stop_s!r}): times must satisfy "
                                 "0 <= start < stop", where=where)


def validate(groups: Sequence[Bottleneck]) -> None:
    if not groups:
        raise InputError("a crowd needs at least one bottleneck")
    for i, g in enumerate(groups):
        g.validate(i)


def scale_capacity(trace: Trace, factor: int) -> Trace:
    """`trace` with `factor` times its capacity (latency unchanged): a bottleneck whose fair
    share for `factor` clients is the trace itself. A packet-delivery (Mahimahi) trace gets
    `factor` delivery opportunities where it had one."""
    n = int(factor)
    if n != factor or n < 1:
        raise InputError(f"capacity factor must be a whole number >= 1, got {factor!r}")
    if n == 1:
        return trace
    return Trace(trace.times_s.copy(), trace.rates_bps * n, trace.duration_s, latency_s=trace.latency_s,
                 loss=trace.loss, name=f"{trace.name}×{n}", source=trace.source, format=trace.format,
                 packet_times_s=None if trace.packet_times_s is None else np.repeat(trace.packet_times_s, n))
