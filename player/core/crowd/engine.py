"""The crowd simulator: sessions that share a bottleneck, event-driven, many bottlenecks at once.

Every session rule comes from `player.core.rules` (`SessionRows`: buffer, histories,
observation, choice, init segments, abandonment acceptance); this module keeps only the
clock of a shared link. Clients that share content, policy and preset form a cohort: one
`SessionRows` and one policy instance, reset for the whole cohort, whichever bottleneck
each client is on (the policy is asked for the rows that need a decision, each at its own
segment).

The clock. Every bottleneck has its own time (trace seconds). Each round of the main loop
takes, for every bottleneck at once, its next event — the earliest of a transfer's
completion, a request's first byte, the end of a wait for room in the buffer or of a
policy's delay, an abandonment check, a client's arrival or departure, a bulk flow
switching, a TCP round's end — and handles all of them with array operations, so a
thousand bottlenecks advance together. Between two events the set of transfers in flight
on a bottleneck is fixed, and processor sharing gives each of the `n` sending transfers
1/n of the capacity: a transfer's progress is (C(t₂) − C(t₁)) / n on the trace's
cumulative-capacity curve C (`netem.link.Link.delivered_bits`), and the next completion is
the time C has grown by n × the smallest remainder (`Link.capacity_time`): exact, with no
time step, whatever the trace does in between. An abandonment check reads a transfer's
progress without touching it, so a client alone on its link gets the very arithmetic of the
lockstep simulator.

Per client, the order of things is the simulator's (`player.core.simulator`): wait for
room (not before segment 1), the decision, the policy's delay, the init segment when the
representation changes (a sequential transfer on the same connection), the media request
(offered to the policy's abandonment hook every `abandon_interval_s` from the request; an
accepted abandonment costs the time and the bytes so far and the segment is requested again
at the new rung), the arrival. Latency (the preset's link: the trace's own, fixed, Sabre's,
plus per-request overhead) passes before the first byte and takes no capacity.

The TCP-like model (`TcpModel`) changes only how the capacity is shared: a connection in
slow start that has delivered its window in the current round stops sending until the
round ends (its share goes to the others); see `player.core.crowd.spec.TcpModel`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

import abr
from netem.link import Link
from player.core.crowd.spec import Bottleneck, CrowdClient, validate
from player.core.crowd_metrics import ClientTimeline, CrowdOutcome, group_metrics, time_edges
from player.core.rules import MAX_ATTEMPTS, DecisionHook, SegmentPlan, SessionRows, accept_abandon, can_abandon
from player.core.simulator import BatchResult, SessionResult, SessionSpec
from player.core.summary import session_metrics

# client phases
PENDING, WAIT, DELAY, LATENCY, TRANSFER, FINISHED, GONE = range(7)
# bulk flow phases
BULK_OFF, BULK_ON = 7, 8

DONE_BITS = 1e-3          # a transfer with fewer bits left than this has completed (float round-off)
RECORDS = ("download", "latency", "rebuffer", "buffer", "wait", "request", "size", "init")


class _Cohort:
    """Clients sharing content, policy and preset: their rules, their policy, their records."""

    def __init__(self, slots: np.ndarray, clients: Sequence[CrowdClient], link: Link) -> None:
        first = clients[0]
        self.slots = slots
        self.clients = list(clients)
        self.preset = p = first.resolved_preset()
        self.content = first.content
        n = len(clients)
        self.policy = p.policy(first.abr, first.abr_params)
        self.rules = SessionRows.for_devices(SegmentPlan.from_content(first.content), p, first.content,
                                             [c.device for c in clients])
        self.plan = self.rules.plan                 # the segments as the preset plays them
        K = self.plan.n_segments
        self.policy.reset(n, abr.Ladder(self.plan.bitrates_bps, float(np.median(self.plan.durations_s))))
        self.link = link
        self.efficiency = float(p.link.efficiency)
        self.abandoning = can_abandon(p, self.policy)
        self.dt = float(p.abandon_interval_s)
        self.min_bytes = float(p.abandon_min_bytes)
        self.max_attempts = MAX_ATTEMPTS if p.abandon_reselect else self.plan.n_rungs
        self.uniform = bool(np.all(self.plan.durations_s == self.plan.durations_s[0]))
        self.rec = {name: np.zeros((n, K)) for name in RECORDS}
        self.chosen = np.zeros((n, K), dtype=np.int64)
        self.wasted = np.zeros(n)
        self.abandons = np.zeros(n, dtype=np.int64)

    def batches(self, rows: np.ndarray, k: np.ndarray) -> list[np.ndarray]:
        """Positions in `rows` that the rules may be asked about together: rows at segment 1
        apart when the preset fixes its rung, and rows at segments of equal duration."""
        key = np.zeros(rows.size, dtype=np.float64)
        if not self.uniform:
            key = self.plan.durations_s[k].astype(np.float64)
        if self.preset.first_rung is not None:
            key = np.where(k == 0, -1.0, key)
        values = np.unique(key)
        if values.size == 1:
            return [np.arange(rows.size)]
        return [np.flatnonzero(key == v) for v in values]


@dataclass
class ClientResult:
    """What one client did: its session (the simulator's `SessionResult`, over the segments
    that arrived) and where it was on the bottleneck's clock."""

    session: SessionResult
    group: int
    start_s: float               # bottleneck time of its first request
    end_s: float                 # bottleneck time its last segment arrived, or it left
    segments: int                # segments that arrived
    complete: bool               # every segment arrived (False: the viewer left first)

    def summary(self, qoe_model: str = "linear") -> dict:
        out = self.session.summary(qoe_model)
        out["complete"] = self.complete
        out["chosen"] = out["chosen"][:self.segments]
        out.update({"group": self.group, "start_s": self.start_s, "end_s": self.end_s})
        return out

    @property
    def request_abs_s(self) -> np.ndarray:
        """Bottleneck time of each arrived segment's request."""
        return self.start_s + self.session.request_s[:self.segments]

    @property
    def bitrate_bps(self) -> np.ndarray:
        return self.session.bitrate_bps[:self.segments]


@dataclass
class GroupResult:
    """One bottleneck's outcome: its clients (in the order given), what its bulk flows got,
    and when its capacity was in use (for utilisation and the players' share)."""

    bottleneck: Bottleneck
    clients: list[ClientResult]
    bulk_bytes: np.ndarray                 # (bulk flows,) bytes each bulk flow received
    busy: np.ndarray                       # (m, 4): t0, t1, sending clients, sending bulk flows
    link: Link = field(repr=False)
    trace_index: int = 0

    @property
    def end_s(self) -> float:
        return max(c.end_s for c in self.clients)

    def capacity_bits(self, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        """The bottleneck's capacity between times (bits)."""
        t0 = np.asarray(t0, dtype=np.float64)
        return self.link.delivered_bits(np.full(t0.shape, self.trace_index), t0, np.asarray(t1, dtype=np.float64))

    def delivered_until(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bits delivered from the start to each time in `t`: to everyone, and to the players
        (while n flows send, the capacity goes to them in equal parts)."""
        t = np.asarray(t, dtype=np.float64)
        if self.busy.shape[0] == 0:
            return np.zeros(t.shape), np.zeros(t.shape)
        t0, t1, npl, nb = self.busy.T
        cap = np.maximum(self.capacity_bits(t0, t1), 0.0)
        frac = npl / np.maximum(npl + nb, 1.0)
        cum_all = np.concatenate([[0.0], np.cumsum(cap)])
        cum_pl = np.concatenate([[0.0], np.cumsum(cap * frac)])
        j = np.searchsorted(t0, t, side="right") - 1
        jj = np.maximum(j, 0)
        part = np.where(j >= 0, np.maximum(self.capacity_bits(t0[jj], np.clip(t, t0[jj], t1[jj])), 0.0), 0.0)
        return (np.where(j >= 0, cum_all[jj] + part, 0.0), np.where(j >= 0, cum_pl[jj] + part * frac[jj], 0.0))

    def outcome(self, qoe_model: str = "linear", step_s: float = 1.0) -> CrowdOutcome:
        """The group as `player.core.crowd_metrics` reads it."""
        tl = [ClientTimeline(c.start_s, c.end_s, c.request_abs_s, c.bitrate_bps, c.summary(qoe_model))
              for c in self.clients]
        edges = time_edges(tl, step_s)
        d_all, d_pl = self.delivered_until(edges)
        mid = 0.5 * (edges[:-1] + edges[1:])
        bulk_on = np.zeros(mid.size)
        for b in self.bottleneck.bulk:
            bulk_on += (mid >= b.start_s) & (mid < b.stop_s)
        return CrowdOutcome(tl, edges, self.capacity_bits(edges[:-1], edges[1:]), np.diff(d_all), np.diff(d_pl),
                            bulk_on, extra={"bulk_bytes": self.bulk_bytes.tolist()})

    def metrics(self, qoe_model: str = "linear", step_s: float = 1.0) -> dict:
        """`player.core.crowd_metrics.group_metrics` of this group."""
        return group_metrics(self.outcome(qoe_model, step_s), qoe_model)


class _Engine:
    """All bottlenecks' state as arrays over slots (clients and bulk flows, bottleneck by
    bottleneck) and over bottlenecks."""

    def __init__(self, groups: Sequence[Bottleneck], on_decision: DecisionHook | None = None) -> None:
        validate(groups)
        self.groups = list(groups)
        self.hook = on_decision
        G = len(groups)
        # one link per distinct link model over the distinct traces; the capacity is the traces'
        trace_ids: dict[int, int] = {}
        traces = []
        for g in groups:
            if id(g.trace) not in trace_ids:
                trace_ids[id(g.trace)] = len(traces)
                traces.append(g.trace)
        self.tidx = np.array([trace_ids[id(g.trace)] for g in groups], dtype=np.int64)
        links: dict = {}

        def link_for(params) -> Link:
            if params not in links:
                links[params] = Link(traces, params)
            return links[params]

        # slots, bottleneck by bottleneck: its clients, then its bulk flows
        grp, is_bulk, owner = [], [], []
        for gi, g in enumerate(groups):
            for j in range(len(g.clients)):
                grp.append(gi)
                is_bulk.append(False)
                owner.append(j)
            for j in range(len(g.bulk)):
                grp.append(gi)
                is_bulk.append(True)
                owner.append(j)
        self.grp = np.array(grp, dtype=np.int64)
        self.is_bulk = np.array(is_bulk, dtype=bool)
        self.owner = np.array(owner, dtype=np.int64)       # index within its bottleneck's clients / bulk
        F = self.grp.size
        self.g_start = np.concatenate([[0], np.flatnonzero(np.diff(self.grp)) + 1]).astype(np.int64)
        # cohorts
        keys: dict[tuple, list[int]] = {}
        for s in np.flatnonzero(~self.is_bulk):
            c = groups[self.grp[s]].clients[self.owner[s]]
            p = c.preset if isinstance(c.preset, str) else ("preset object", id(c.preset))
            keys.setdefault((c.abr, tuple(sorted(c.abr_params.items())), id(c.content), p), []).append(int(s))
        self.cohorts: list[_Cohort] = []
        self.coh = np.full(F, -1, dtype=np.int64)
        self.row = np.full(F, -1, dtype=np.int64)
        for ci, slots in enumerate(keys.values()):
            sl = np.array(slots, dtype=np.int64)
            clients = [groups[self.grp[s]].clients[self.owner[s]] for s in slots]
            self.cohorts.append(_Cohort(sl, clients, link_for(clients[0].resolved_preset().link)))
            self.coh[sl] = ci
            self.row[sl] = np.arange(sl.size)
        self.capacity = next(iter(links.values())) if links else Link(traces)
        inf = np.inf
        # per slot
        self.phase = np.full(F, PENDING, dtype=np.int8)
        self.t_timer = np.full(F, inf)       # the phase's own timer (arrival, wait, delay, first byte, bulk switch)
        self.t_check = np.full(F, inf)       # next abandonment check
        self.t_round = np.full(F, inf)       # end of the TCP round
        self.t_leave = np.full(F, inf)       # departure
        self.k = np.zeros(F, dtype=np.int64)
        self.rung = np.zeros(F, dtype=np.int64)
        self.size = np.zeros(F)              # bytes of the object being fetched
        self.bits = np.zeros(F)              # capacity it needs (bits / efficiency)
        self.rem = np.zeros(F)
        self.budget = np.full(F, inf)        # bits the TCP window still allows this round
        self.in_flow = np.zeros(F, dtype=bool)
        self.sending = np.zeros(F, dtype=bool)
        self.is_init = np.zeros(F, dtype=bool)
        self.t_req = np.zeros(F)
        self.lat = np.zeros(F)
        self.t_fb = np.zeros(F)
        self.t_el = np.zeros(F)              # when each client's buffer was last brought up to date
        self.pending_dt = np.zeros(F)        # the wait or delay to elapse when its timer fires
        self.check_j = np.zeros(F, dtype=np.int64)   # offers made of the current request, + 1
        self.offer_e = np.zeros(F)           # when (s after the request) the next offer is due
        self.prev_e = np.zeros(F)            # the previous offer's time and bytes (0 before the first)
        self.prev_got = np.zeros(F)
        self.attempts = np.zeros(F, dtype=np.int64)  # abandoned requests of the current segment
        self.reselecting = np.zeros(F, dtype=bool)   # deciding a segment again after an abandonment
        self.got_bits = np.zeros(F)
        self.start = np.zeros(F)
        self.end = np.full(F, np.nan)
        # TCP connection state per slot
        self.cwnd = np.zeros(F)              # bits
        self.slow_start = np.ones(F, dtype=bool)
        self.last_busy = np.full(F, -inf)    # when the connection last finished a transfer
        # per bottleneck
        self.t_sync = np.zeros(G)
        self.n_send = np.zeros(G, dtype=np.int64)
        self.comp_time = np.full(G, inf)
        self.comp_slot = np.zeros(G, dtype=np.int64)
        self.comp_budget = np.zeros(G, dtype=bool)
        self.tcp = np.array([g.tcp is not None for g in groups], dtype=bool)
        self.rtt = np.array([g.tcp.rtt_s if g.tcp else 0.0 for g in groups])
        self.rto = np.array([g.tcp.rto_s if g.tcp else inf for g in groups])
        self.iw_bits = np.array([8.0 * g.tcp.initial_window_bytes if g.tcp else inf for g in groups])
        self.queue_s = np.array([8.0 * g.tcp.queue_bytes / g.trace.mean_rate_bps if g.tcp else 0.0 for g in groups])
        self.busy_log: list[np.ndarray] = []
        self.ended = False                   # some client finished or left in this round
        # arrivals, departures, bulk schedules
        for s in range(F):
            g = groups[self.grp[s]]
            if self.is_bulk[s]:
                b = g.bulk[self.owner[s]]
                self.phase[s] = BULK_OFF
                self.t_timer[s] = b.start_s
            else:
                c = g.clients[self.owner[s]]
                self.t_timer[s] = self.start[s] = float(c.start_s)
                if c.watch_s is not None:
                    self.t_leave[s] = c.start_s + float(c.watch_s)
        self.n_events_bound = 1000 + sum(64 * (co.plan.n_segments + 8) * (1 + co.plan.n_rungs) * len(co.clients)
                                         for co in self.cohorts) + 4 * len(self.is_bulk)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        for _ in range(self.n_events_bound):
            tmin = np.minimum(np.minimum(self.t_timer, self.t_check), np.minimum(self.t_round, self.t_leave))
            t_g = np.minimum(np.minimum.reduceat(tmin, self.g_start), self.comp_time)
            live = np.isfinite(t_g)
            if not live.any():
                return
            self.step(t_g, live)
        raise RuntimeError("the crowd did not finish (event bound reached)")  # pragma: no cover - a guard

    def step(self, t_g: np.ndarray, live: np.ndarray) -> None:
        now = t_g[self.grp]
        fin = np.isfinite(now)
        flow_g = np.flatnonzero(live & (self.comp_time <= t_g))
        heavy = fin & ((self.t_timer <= now) | (self.t_round <= now) | (self.t_leave <= now))
        self.sync(np.union1d(flow_g, self.grp[heavy]), t_g)
        # 1. transfers that completed (or used up their window)
        if flow_g.size:
            s = self.comp_slot[flow_g]
            by_budget = self.comp_budget[flow_g]
            self.budget[s[by_budget]] = 0.0
            self.rem[s[~by_budget]] = 0.0
            in_g = np.zeros(t_g.size, dtype=bool)
            in_g[flow_g] = True
            cand = self.sending & in_g[self.grp]
            done = np.flatnonzero(cand & (self.rem <= DONE_BITS))
            blocked = cand & (self.rem > DONE_BITS) & (self.budget <= DONE_BITS)
            self.set_sending(np.flatnonzero(blocked), False)
            if done.size:
                self.transfer_done(done, now)
        # 2. departures
        gone = np.flatnonzero(fin & (self.t_leave <= now))
        if gone.size:
            self.leave(gone, now)
        # 3. phase timers
        due = np.flatnonzero(fin & (self.t_timer <= now))
        if due.size:
            ph = self.phase[due]
            self.t_timer[due] = np.inf
            for p, fn in ((PENDING, self.arrive), (WAIT, self.wait_over), (DELAY, self.delay_over),
                          (LATENCY, self.first_byte), (BULK_OFF, self.bulk_on), (BULK_ON, self.bulk_off)):
                sel = due[ph == p]
                if sel.size:
                    fn(sel, now)
        # 4. TCP rounds
        rounds = np.flatnonzero(fin & (self.t_round <= now))
        if rounds.size:
            self.round_over(rounds, now)
        # 5. abandonment checks
        checks = np.flatnonzero(fin & (self.t_check <= now))
        if checks.size:
            self.check(checks, now, t_g)
        if self.ended:
            self.end_bulk(now, t_g)
        # the shares and the next completion of every bottleneck that moved
        self.next_completion(np.flatnonzero(live))

    # -- sharing ------------------------------------------------------------------------------
    def sync(self, gs: np.ndarray, t_g: np.ndarray) -> None:
        """Serve the sending transfers of bottlenecks `gs` up to their event time."""
        if gs.size == 0:
            return
        act = gs[self.n_send[gs] > 0]
        if act.size:
            t0, t1 = self.t_sync[act], t_g[act]
            cap = np.maximum(self.capacity.delivered_bits(self.tidx[act], t0, t1), 0.0)
            served = np.zeros(t_g.size)
            served[act] = cap / self.n_send[act]
            bulk_n = np.bincount(self.grp[self.sending & self.is_bulk], minlength=t_g.size)[act]
            self.busy_log.append(np.column_stack([act, t0, t1, self.n_send[act] - bulk_n, bulk_n]))
            m = np.flatnonzero(self.sending & (served[self.grp] > 0))
            if m.size:
                d = served[self.grp[m]]
                self.rem[m] -= d
                self.budget[m] -= d
                self.got_bits[m] += d
        self.t_sync[gs] = t_g[gs]

    def set_sending(self, s: np.ndarray, value) -> None:
        """Transfers start or stop sending; each bottleneck's count of senders follows."""
        new = np.broadcast_to(np.asarray(value, dtype=bool), s.shape)
        delta = new.astype(np.int64) - self.sending[s]
        self.sending[s] = new
        np.add.at(self.n_send, self.grp[s], delta)

    def next_completion(self, gs: np.ndarray) -> None:
        """Each bottleneck's next transfer event: n × the smallest remainder (or window) on the curve."""
        amt = np.where(self.sending, np.minimum(self.rem, self.budget), np.inf)
        gmin = np.minimum.reduceat(amt, self.g_start)
        hit = np.flatnonzero(self.sending & (amt == gmin[self.grp]))
        self.comp_slot[self.grp[hit]] = hit
        self.comp_budget[self.grp[hit]] = self.budget[hit] < self.rem[hit]
        self.comp_time[gs] = np.inf
        gs = gs[(self.n_send[gs] > 0) & np.isfinite(gmin[gs])]
        if gs.size:
            self.comp_time[gs] = self.capacity.capacity_time(self.tidx[gs], self.t_sync[gs], self.n_send[gs] * gmin[gs])

    def open_transfer(self, s: np.ndarray, now: np.ndarray) -> None:
        """Transfers start sending at their first byte (a TCP connection idle too long, or new,
        starts from the initial window)."""
        t = now[s]
        self.in_flow[s] = True
        self.set_sending(s, True)
        self.rem[s] = self.bits[s]
        self.t_fb[s] = t
        self.budget[s] = np.inf
        g = self.grp[s]
        tcp = self.tcp[g]
        if tcp.any():
            ts = s[tcp]
            gt = g[tcp]
            restart = (t[tcp] - self.last_busy[ts]) > self.rto[gt]
            self.cwnd[ts[restart]] = self.iw_bits[gt[restart]]
            self.slow_start[ts[restart]] = True
            ss = ts[self.slow_start[ts]]
            self.budget[ss] = self.cwnd[ss]
            self.t_round[ss] = now[ss] + self.round_s(ss, now)

    def round_s(self, s: np.ndarray, now: np.ndarray) -> np.ndarray:
        """A TCP round: the RTT, plus the queue a bulk flow keeps full while one is on."""
        g = self.grp[s]
        bulk_on = np.bincount(self.grp[self.is_bulk & self.in_flow], minlength=self.rtt.size)[g] > 0
        return self.rtt[g] + np.where(bulk_on, self.queue_s[g], 0.0)

    def close_transfer(self, s: np.ndarray, now: np.ndarray, new_connection: bool = False) -> None:
        self.in_flow[s] = False
        self.set_sending(s, False)
        self.t_round[s] = np.inf
        self.last_busy[s] = -np.inf if new_connection else now[s]
        self.budget[s] = np.inf

    def round_over(self, s: np.ndarray, now: np.ndarray) -> None:
        """A TCP round ended: the window doubles if it was the limit, else slow start ends."""
        limited = self.budget[s] <= DONE_BITS
        ss = self.slow_start[s]
        grow = s[ss & limited]
        self.cwnd[grow] *= 2.0
        self.slow_start[s[ss & ~limited]] = False
        still = s[self.slow_start[s]]
        self.budget[still] = self.cwnd[still]
        self.t_round[still] = now[still] + self.round_s(still, now)
        done = s[~self.slow_start[s]]
        self.budget[done] = np.inf
        self.t_round[done] = np.inf
        self.set_sending(s, self.in_flow[s] & (self.rem[s] > DONE_BITS))

    # -- bulk flows ---------------------------------------------------------------------------
    def bulk_on(self, s: np.ndarray, now: np.ndarray) -> None:
        self.phase[s] = BULK_ON
        self.bits[s] = np.inf
        self.last_busy[s] = -np.inf
        self.open_transfer(s, now)
        g = self.grp[s]
        self.t_timer[s] = [self.groups[gi].bulk[j].stop_s for gi, j in zip(g, self.owner[s])]

    def bulk_off(self, s: np.ndarray, now: np.ndarray) -> None:
        self.phase[s] = BULK_OFF
        self.close_transfer(s, now)

    def end_bulk(self, now: np.ndarray, t_g: np.ndarray) -> None:
        """A bottleneck whose clients have all finished or left is over: its bulk flows stop."""
        self.ended = False
        playing = ~self.is_bulk & (self.phase != FINISHED) & (self.phase != GONE)
        over = np.bincount(self.grp[playing], minlength=self.t_sync.size) == 0
        stop = np.flatnonzero(self.is_bulk & over[self.grp] & np.isfinite(now))
        on = stop[self.phase[stop] == BULK_ON]
        if on.size:
            self.sync(np.unique(self.grp[on]), t_g)
            self.bulk_off(on, now)
        self.t_timer[stop] = np.inf

    # -- a client's session -------------------------------------------------------------------
    def by_cohort(self, s: np.ndarray):
        c = self.coh[s]
        for ci in np.unique(c):
            yield self.cohorts[ci], s[c == ci]

    def elapse(self, co: _Cohort, s: np.ndarray, seconds: np.ndarray, now: np.ndarray) -> np.ndarray:
        """The clients' buffers play (or stall) for `seconds`, up to `now`; returns the stalls."""
        self.t_el[s] = now[s]
        return co.rules.buffer.elapse(seconds, self.row[s])

    def arrive(self, s: np.ndarray, now: np.ndarray) -> None:
        self.t_el[s] = now[s]
        self.decide(s, now)

    def wait_over(self, s: np.ndarray, now: np.ndarray) -> None:
        for co, ss in self.by_cohort(s):
            stall = self.elapse(co, ss, self.pending_dt[ss], now)
            again = self.reselecting[ss]       # a wait after an abandonment counts its stall
            co.rec["rebuffer"][self.row[ss[again]], self.k[ss[again]]] += stall[again]
        self.decide(s, now)

    def decide(self, s: np.ndarray, now: np.ndarray) -> None:
        """The policy chooses each client's next rung (and may ask for a delay)."""
        go = []
        for co, ss in self.by_cohort(s):
            rows, k = self.row[ss], self.k[ss]
            for part in co.batches(rows, k):
                sp = ss[part]
                rung, delay = co.rules.choose(co.policy, k[part], rows[part], hook=self.hook)
                self.rung[sp] = rung
                if delay is None:
                    go.append(sp)
                    continue
                wait = delay > 0
                w = sp[wait]
                self.phase[w] = DELAY
                self.pending_dt[w] = delay[wait]
                self.t_timer[w] = now[w] + delay[wait]
                co.rec["wait"][self.row[w], self.k[w]] += delay[wait]
                go.append(sp[~wait])
        if go:
            self.request(np.concatenate(go), now)

    def delay_over(self, s: np.ndarray, now: np.ndarray) -> None:
        for co, ss in self.by_cohort(s):
            stall = self.elapse(co, ss, self.pending_dt[ss], now)
            co.rec["rebuffer"][self.row[ss], self.k[ss]] += stall
        self.request(s, now)

    def request(self, s: np.ndarray, now: np.ndarray) -> None:
        """The request for segment k at the chosen rung: its init segment first when the
        representation changes, then the media."""
        if s.size == 0:
            return
        for co, ss in self.by_cohort(s):
            fresh = ss[~self.reselecting[ss]]      # a segment decided again keeps its request time
            rows, k = self.row[fresh], self.k[fresh]
            co.rec["request"][rows, k] = co.rules.buffer.clock_s[rows]
            if co.rules.inits is not None:
                first = k == 0
                co.rules.first_inits_before_clock(0, rows[first], self.rung[fresh[first]])
            self.fetch(co, ss, now)

    def fetch(self, co: _Cohort, s: np.ndarray, now: np.ndarray) -> None:
        """Send each client's next object: its init segment if it needs one, else the media."""
        init = np.zeros(s.size, dtype=bool)
        if co.rules.inits is not None:
            need, size = co.rules.inits.request(self.row[s], self.rung[s])
            init = need
            self.size[s[need]] = size
        self.size[s[~init]] = co.plan.sizes_bytes[self.k[s[~init]], self.rung[s[~init]]]
        self.is_init[s] = init
        self.bits[s] = self.size[s] * 8.0 / co.efficiency
        t = now[s]
        lat = co.link.transfer(self.tidx[self.grp[s]], t, np.zeros(s.size)).latency_s
        self.phase[s] = LATENCY
        self.t_req[s] = t
        self.lat[s] = lat
        self.t_timer[s] = t + lat
        self.reselecting[s] = False
        if co.abandoning:
            media = s[~init & (self.rung[s] > 0) & (self.attempts[s] < co.max_attempts)]
            self.check_j[media] = 1
            self.prev_e[media] = 0.0
            self.prev_got[media] = 0.0
            self.offer_e[media] = co.dt
            self.schedule_offer(co, media, now)

    def first_byte(self, s: np.ndarray, now: np.ndarray) -> None:
        self.phase[s] = TRANSFER
        empty = self.bits[s] <= 0
        if empty.any():      # an init revalidated (HTTP 304): the latency was all
            self.in_flow[s[empty]] = False
            self.t_fb[s[empty]] = now[s[empty]]
            self.transfer_done(s[empty], now)
        self.open_transfer(s[~empty], now)

    def transfer_done(self, s: np.ndarray, now: np.ndarray) -> None:
        self.close_transfer(s, now)
        self.t_check[s] = np.inf
        for co, ss in self.by_cohort(s):
            rows, k = self.row[ss], self.k[ss]
            xfer = now[ss] - self.t_fb[ss]
            total = self.lat[ss] + xfer
            stall = self.elapse(co, ss, total, now)
            co.rec["rebuffer"][rows, k] += stall
            init = self.is_init[ss]
            if init.any():
                co.rec["init"][rows[init], k[init]] += total[init]
                self.fetch(co, ss[init], now)
            m = ss[~init]
            if m.size:
                self.media_done(co, m, now, xfer[~init])

    def media_done(self, co: _Cohort, s: np.ndarray, now: np.ndarray, xfer: np.ndarray) -> None:
        rows, k, rung = self.row[s], self.k[s], self.rung[s]
        lat = self.lat[s]
        total = lat + xfer
        co.rules.downloaded(k, rung, self.size[s], lat, xfer, rows)
        co.chosen[rows, k] = rung
        rec = co.rec
        rec["download"][rows, k] = total
        rec["latency"][rows, k] = lat
        rec["buffer"][rows, k] = co.rules.buffer.buffer_s[rows]
        rec["size"][rows, k] = self.size[s]
        k = k + 1
        self.k[s] = k
        self.attempts[s] = 0
        K = co.plan.n_segments
        last = k >= K
        if last.any():
            f = s[last]
            if co.preset.play_out_at_end:
                co.rules.buffer.play_out(self.row[f])
            self.phase[f] = FINISHED
            self.end[f] = now[f]
            self.t_leave[f] = np.inf
            self.ended = True
        if (~last).any():
            self.wait_for_room(co, s[~last], now)

    def wait_for_room(self, co: _Cohort, s: np.ndarray, now: np.ndarray) -> None:
        """Before deciding segment k: wait until the buffer has room (`room_wait_s`), or
        decide now."""
        rows, k = self.row[s], self.k[s]
        wait = co.rules.room_wait_s(k, rows)
        co.rec["wait"][rows, k] += wait
        w = wait > 0
        self.phase[s[w]] = WAIT
        self.pending_dt[s[w]] = wait[w]
        self.t_timer[s[w]] = now[s[w]] + wait[w]
        if (~w).any():
            self.decide(s[~w], now)

    def progress_bits(self, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Capacity bits each request has received `e` seconds after it was sent, read from the
        shares without touching them (0 while the latency runs)."""
        done = np.zeros(s.size)
        flowing = self.phase[s] == TRANSFER
        f = s[flowing]
        if f.size:
            g = self.grp[f]
            probe = np.maximum(self.t_fb[f] + (e[flowing] - self.lat[f]), self.t_sync[g])
            more = np.where(self.sending[f], np.maximum(self.capacity.delivered_bits(
                self.tidx[g], self.t_sync[g], probe), 0.0) / np.maximum(self.n_send[g], 1), 0.0)
            done[flowing] = (self.bits[f] - self.rem[f]) + more
        return done

    def reach_s(self, co: _Cohort, s: np.ndarray, want_bytes: np.ndarray) -> np.ndarray:
        """When (s after the request) each request will have received `want_bytes` at the
        shares of now (a request still in its latency joins the senders at its first byte)."""
        g = self.grp[s]
        sending = (self.phase[s] == TRANSFER) & self.sending[s]
        flowing = self.phase[s] == TRANSFER     # a window-blocked one sends again when its round ends
        start = np.where(sending, self.t_sync[g], np.where(flowing, np.maximum(self.t_round[s], self.t_sync[g]),
                                                             self.t_req[s] + self.lat[s]))
        have = np.where(flowing, self.bits[s] - self.rem[s], 0.0)
        n = np.where(sending, np.maximum(self.n_send[g], 1), self.n_send[g] + 1)
        need = np.maximum(want_bytes * 8.0 / co.efficiency - have, 0.0)
        at = self.capacity.capacity_time(self.tidx[g], start, n * need)
        return self.lat[s] + np.maximum(at - (self.t_req[s] + self.lat[s]), 0.0)

    def schedule_offer(self, co: _Cohort, s: np.ndarray, now: np.ndarray) -> None:
        """The next offer of each request to the abandonment hook (`player.core.rules.next_offer_s`):
        every `abandon_interval_s`; with `abandon_min_bytes`, also not before that many more
        bytes have arrived since the previous offer (none at or past the object's size)."""
        if co.min_bytes > 0 and s.size:
            want = self.prev_got[s] + co.min_bytes
            reach = np.where(want >= self.size[s], np.inf, self.reach_s(co, s, np.minimum(want, self.size[s])))
            self.offer_e[s] = np.maximum(self.prev_e[s] + co.dt, reach)
        self.t_check[s] = self.t_req[s] + self.offer_e[s]

    def check(self, s: np.ndarray, now: np.ndarray, t_g: np.ndarray) -> None:
        """Offer in-flight media downloads to the policy's abandonment hook."""
        for co, ss in self.by_cohort(s):
            e = self.offer_e[ss]
            got = np.minimum(self.progress_bits(ss, e) * co.efficiency / 8.0, self.size[ss])
            if co.min_bytes > 0:       # the shares changed since it was scheduled: not all the bytes yet
                early = got < self.prev_got[ss] + co.min_bytes - 1e-6
                if early.any():
                    self.schedule_offer(co, ss[early], now)
                    early[early] = self.t_check[ss[early]] > now[ss[early]]     # (none later than now: offer)
                    self.t_check[ss[~early]] = np.inf
                    ss, e, got = ss[~early], e[~early], got[~early]
                    if ss.size == 0:
                        continue
            rows, k, rung = self.row[ss], self.k[ss], self.rung[ss]
            buf = co.rules.buffer
            moving = buf.playing[rows] & ~buf.paused[rows]
            level = np.where(moving, np.maximum(buf.buffer_s[rows] - e, 0.0), buf.buffer_s[rows])
            new = np.full(ss.size, -1, dtype=np.int64)
            for part in co.batches(rows, k):
                kk = k[part]
                prog = abr.Progress(sessions=rows[part], rung=rung[part], bytes_done=got[part],
                                    bytes_total=self.size[ss[part]], elapsed_s=e[part], buffer_s=level[part],
                                    segment_duration_s=float(co.plan.durations_s[kk[0]]),
                                    sizes_bytes=co.plan.sizes_bytes[kk], mask=co.rules.mask[rows[part]],
                                    request_latency_s=np.minimum(self.lat[ss[part]], e[part]))
                new[part] = np.asarray(co.policy.abandon(prog), dtype=np.int64)
            hit = accept_abandon(new, rung)
            keep = ss[~hit]
            self.prev_e[keep] = e[~hit]
            self.prev_got[keep] = got[~hit]
            self.check_j[keep] += 1
            self.offer_e[keep] = self.check_j[keep] * co.dt
            self.schedule_offer(co, keep, now)
            if hit.any():
                self.abandon(co, ss[hit], new[hit], e[hit], got[hit], now, t_g)

    def abandon(self, co: _Cohort, a: np.ndarray, new: np.ndarray, e: np.ndarray, got: np.ndarray,
                now: np.ndarray, t_g: np.ndarray) -> None:
        """Requests abandoned `e` after they were sent: their time and bytes are spent; the
        segment is requested again at the new rung, or decided afresh (`abandon_reselect`:
        the wait for room, a new decision and its delay)."""
        rows, k = self.row[a], self.k[a]
        self.sync(np.unique(self.grp[a]), t_g)
        self.close_transfer(a, now, new_connection=True)
        self.t_timer[a] = np.inf
        self.t_check[a] = np.inf
        stall = self.elapse(co, a, e, now)
        co.rec["rebuffer"][rows, k] += stall
        co.wasted[rows] += got
        co.abandons[rows] += 1
        self.attempts[a] += 1
        if not co.preset.abandon_reselect:
            self.rung[a] = new
            self.fetch(co, a, now)
            return
        self.reselecting[a] = True
        self.wait_for_room(co, a, now)

    def leave(self, s: np.ndarray, now: np.ndarray) -> None:
        """Viewers leave: whatever they were fetching is dropped."""
        flowing = s[self.in_flow[s]]
        self.close_transfer(flowing, now)
        for co, ss in self.by_cohort(s):
            self.elapse(co, ss, np.maximum(now[ss] - self.t_el[ss], 0.0), now)
        self.phase[s] = GONE
        self.ended = True
        self.t_timer[s] = self.t_check[s] = self.t_round[s] = self.t_leave[s] = np.inf
        self.end[s] = now[s]

    # -- results ------------------------------------------------------------------------------
    def results(self) -> list[GroupResult]:
        per_slot: dict[int, ClientResult] = {}
        for co in self.cohorts:
            s = co.slots
            buf = co.rules.buffer
            segs = self.k[s]
            complete = self.phase[s] == FINISHED
            K = co.plan.n_segments
            plan = co.plan
            sizes = np.where(np.arange(K)[None, :] < segs[:, None], co.rec["size"], 0.0)
            all_done = bool(complete.all())
            metrics = session_metrics(
                co.chosen, co.rec["rebuffer"], plan.durations_s, plan.bitrates_bps, startup_s=buf.startup_s,
                session_s=buf.clock_s, stall_count=buf.stall_count, bytes_=sizes.sum(axis=1),
                wasted_bytes=co.wasted.astype(np.int64), abandons=co.abandons, heights=plan.heights,
                qoe_skip_first=co.preset.qoe_skip_first, segments=None if all_done else segs,
                played_s=None if all_done else np.where(complete, np.inf, buf.played_s))
            records = {name: a.copy() for name, a in co.rec.items()}
            records["size"] = records["size"].astype(np.int64)
            specs = []
            for sl, c in zip(s, co.clients):
                g = self.groups[self.grp[sl]]
                specs.append(SessionSpec(g.trace, c.content, c.abr, dict(c.abr_params), c.device, c.preset,
                                         label=dict(c.label)))
            batch = BatchResult(specs, co.chosen.copy(), records, buf.startup_s.copy(), buf.clock_s.copy(),
                                buf.stall_count.copy(), co.wasted.astype(np.int64), co.abandons.copy(), metrics,
                                co.policy.describe(), plan.bitrates_bps, co.rules.inits is not None)
            for i, sl in enumerate(s):
                per_slot[int(sl)] = ClientResult(batch.session(i), int(self.grp[sl]), float(self.start[sl]),
                                                 float(self.end[sl]), int(segs[i]), bool(complete[i]))
        busy = np.concatenate(self.busy_log) if self.busy_log else np.zeros((0, 5))
        busy = busy[np.lexsort((busy[:, 1], busy[:, 0]))]       # by bottleneck, then time
        cut = np.searchsorted(busy[:, 0], np.arange(len(self.groups) + 1) - 0.5)
        out = []
        for gi, g in enumerate(self.groups):
            lo, hi = self.g_start[gi], (self.g_start[gi + 1] if gi + 1 < len(self.groups) else self.grp.size)
            sl = np.arange(lo, hi)
            clients = [per_slot[int(x)] for x in sl[~self.is_bulk[sl]]]
            bulk = sl[self.is_bulk[sl]]
            out.append(GroupResult(g, clients, self.got_bits[bulk] / 8.0, busy[cut[gi]:cut[gi + 1], 1:],
                                   self.capacity, int(self.tidx[gi])))
        return out


def simulate_crowd(groups: Sequence[Bottleneck], on_decision: DecisionHook | None = None) -> list[GroupResult]:
    """Simulate every bottleneck with its clients and bulk flows; results in the order given."""
    engine = _Engine(groups, on_decision)
    engine.run()
    return engine.results()
