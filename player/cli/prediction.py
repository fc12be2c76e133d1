"""How `abrlab play` predicts the session it plays (`player.lab.prediction` does the work).

For the in-process edge the command knows everything the simulator needs: the trace, the
content it generated the presentation from, and when the edge started replaying the trace.
The edge starts it again from the beginning when the session starts (`Prediction.watch`), so
the session plays the trace from 0 as `abrlab simulate` does; the trace time at which it
started is still measured (microseconds) and given to the simulator. For an MPD_URL it knows the network only
when ``--trace`` says what shapes it (e.g. ``abrlab serve --trace T`` or ``abrlab proxy``);
the content is then ``--movie`` or what the manifest says, and the trace time at which the
session started is unknown (0 is assumed, and the prediction says so).
"""
from __future__ import annotations

import argparse
from typing import Any

from netem import formats
from netem.content import Content, load as load_content
from netem.edge import EdgeServer
from abr.errors import PolicyOutputError
from netem.errors import AbrlabError, InputError
from netem.trace import Trace
from player.core.events import Event, SessionStart
from player.http.player import HttpPlayer
from player.lab import prediction as lab

NO_TRACE = ("the network is not abrlab's in-process edge, and no --trace says what shapes it: "
            "the simulator has nothing to predict with")


class Prediction:
    """What the prediction of this command's session needs besides the session itself."""

    def __init__(self) -> None:
        self.trace: Trace | None = None
        self.content: Content | None = None       # None: what the manifest said
        self.edge: EdgeServer | None = None       # the in-process edge the player uses (its trace clock)
        self.edges: list[EdgeServer] = []
        self.notes: list[str] = []
        self.reason = NO_TRACE

    def for_edge(self, trace: Trace, content: Content, edges: list[EdgeServer], args: argparse.Namespace) -> None:
        """The in-process edges serving `content` over `trace` (the first is the player's)."""
        self.trace, self.content, self.edge, self.edges = trace, content, edges[0], edges
        if args.fault:
            self.notes.append("faults were injected at the edge (--fault); the simulator does not model them")
        if args.protect:
            self.notes.append("the licence's policy (its rung mask) and its request are not modelled")

    def for_network(self, args: argparse.Namespace) -> None:
        """An MPD_URL: a prediction only when --trace describes its network (InputError for bad files)."""
        if args.trace is None:
            if args.movie is not None:
                raise InputError("--movie with an MPD_URL describes its content for the prediction, which also "
                                 "needs --trace (the trace that shapes that network)")
            return
        self.trace = formats.load(args.trace, args.trace_format)
        self.content = None if args.movie is None else load_content(args.movie)
        self.notes.append("the trace time at which the session started is unknown for a network abrlab does not "
                          "run: 0 assumed")

    def watch(self, player: HttpPlayer) -> None:
        """At `player`'s session start, the in-process edges start replaying their trace from
        its beginning (the manifest was fetched on the trace's first moments): the session plays
        the trace from 0, as `abrlab simulate` does. Call before other listeners, so nothing
        runs in between."""
        def on_event(ev: Event) -> None:
            if isinstance(ev, SessionStart) and not ev.restart:
                for e in self.edges:
                    if not e.restart_clock():
                        self.notes.append(f"edge {e.index} was busy at the session start: its trace was not "
                                          "restarted")
        player.add_listener(on_event)

    def trace_offset_s(self, player: HttpPlayer) -> float:
        """The trace time at which `player`'s session started: where the in-process edge's trace
        clock stood (it starts when the edge starts listening), else 0."""
        if self.edge is None or player.session_start_monotonic is None:
            return 0.0
        return max(0.0, (player.session_start_monotonic - self.edge.t0) * player.clock.time_scale)

    def attach(self, player: HttpPlayer) -> dict[str, Any] | None:
        """The prediction of `player`'s session, set as its summary's ``prediction`` (once)."""
        s = player.summary
        if s is None:
            return None
        if "prediction" not in s:
            try:
                s["prediction"] = self._predict(player)
            except (AbrlabError, PolicyOutputError) as exc:   # a policy the simulator cannot build or run
                s["prediction"] = lab.unavailable(f"the simulator could not run: {exc}")
        return s["prediction"]

    def _predict(self, player: HttpPlayer) -> dict[str, Any]:
        if self.trace is None:
            return lab.unavailable(self.reason)
        if player.live is not None:
            return lab.unavailable("a live session is not predicted (the simulator's live presets model our origin, "
                                   "but not this session's join point and clock sync): `abrlab simulate --preset "
                                   "live-ll` with the same trace and settings simulates one")
        if player.plan is None or player.session_start_monotonic is None:
            return lab.unavailable("the session did not start")
        notes = list(self.notes)
        offset = self.trace_offset_s(player)
        content = self.content
        plan = player.plan.segment_plan
        if content is not None and (content.n_segments, content.n_rungs) != (plan.n_segments, plan.n_rungs):
            notes.append(f"--movie has {content.n_segments} segments × {content.n_rungs} rungs, the manifest "
                         f"{plan.n_segments} × {plan.n_rungs}: the manifest's sizes are used")
            content = None
        if content is None:
            content = lab.content_of_plan(plan)
            if any(t.sizes_bytes() is None for t in player.plan.video):
                notes.append("segment sizes are the manifest's estimates (bitrate × duration): give --movie for "
                             "the real ones")
        return lab.predict_played(player.events_log, player.summary, self.trace, content, abr=player.abr_name,
                                  abr_params=player.abr_params, device=player.plan.device, preset=player.preset,
                                  trace_offset_s=offset, qoe_model=player.qoe_model, notes=notes)
