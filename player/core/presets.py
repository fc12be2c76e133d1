"""Session semantics presets: how a session requests, buffers, stalls and is scored.

`default` is abrlab's own; `sabre` and `pensieve` reproduce those simulators' session
semantics (not their bugs) so results line up with published work. The live family
(`live`, `live-ll`, `dashjs-live`) plays the content as a live stream (`SessionPreset.live`,
`player.core.live`). README states each.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

import abr
from netem.errors import InputError
from netem.link import LinkParams, preset as link_preset
from player.core.live import LiveSettings


@dataclass(frozen=True)
class SessionPreset:
    name: str
    link: LinkParams
    buffer_cap_s: float = 30.0
    whole_segment_fits: bool = True     # wait until buffer + next segment <= cap
    wait_quantum_s: float = 0.0         # waits are rounded up to this (Pensieve: 0.5 s sleeps)
    startup_threshold_s: float = 0.0    # 0: playback starts when the first segment arrives
    startup_is_stall: bool = False      # Pensieve: the clock of stalls starts at the first request
    first_rung: int | None = None       # fixed rung for segment 1 (None: ask the policy)
    throughput_includes_latency: bool = False
    qoe_skip_first: bool = False        # Pensieve sums QoE over segments 2..N
    play_out_at_end: bool = True        # play the remaining buffer after the last download
    abandonment: bool = True            # offer in-flight downloads to the policy's abandonment hook
    abandon_interval_s: float = 0.25    # how often (session seconds) an in-flight download is offered
    # an offer also waits until this many more bytes have arrived since the last one (the first
    # offer: since the request); 0: offers every `abandon_interval_s` from the request (Sabre: 1500)
    abandon_min_bytes: float = 0.0
    # after an abandonment the policy chooses the segment's rung afresh (a new decision, its
    # delay honoured) instead of taking the rung its abandonment rule named (Sabre does: its
    # loop never reads the rule's answer)
    abandon_reselect: bool = False
    abr_defaults: dict[str, dict] = field(default_factory=dict)  # per-policy parameter defaults
    # a policy name that means another registered policy under this preset (Sabre's `bola`
    # is Sabre's own BOLA): name -> registered name; defaults are looked up by either name
    abr_aliases: dict[str, str] = field(default_factory=dict)
    doc: str = ""
    # init segments: before a media request whose representation differs from the previous
    # request's (and before the first), a separate request for that representation's init
    # segment, through the same link (latency, overhead, the bytes); 0 bytes: none at all
    init_bytes: int = 0
    init_at_start: bool = True          # False: the first init comes before the session clock (like the MPD)
    init_revalidated: bool = False      # True: a representation's init again later is a 304: no body bytes
    # the buffer target while the previous choice is the highest allowed rung (dash.js
    # bufferTimeAtTopQuality; for content of `long_form_s` or more, the long-form one); None: the cap
    buffer_cap_top_s: float | None = None
    buffer_cap_top_long_s: float | None = None
    long_form_s: float = 600.0
    # the segments as the session plays them (`player.core.rules.played_plan`): Pensieve's environment
    # knows its one movie by constants, crediting every chunk with VIDEO_CHUNCK_LEN = 4 s of
    # media (EnvivioDash3's segments last 359408/90000 = 3.993 s) and playing
    # TOTAL_VIDEO_CHUNCK = 48 of the 49 chunks it has sizes for
    duration_quantum_s: float = 0.0     # a segment's media counts as its duration rounded to this; 0: exact
    last_segment_played: bool = True    # False: the session ends before the last segment
    # dash.js fast switching (`player.core.fast_switch`): a quality change to a rung above the one buffered at
    # the playhead + `fast_switch_margin_s` re-fetches the buffered segments from there on; the playhead reads
    # `stall_gap_s` short of the media played once a stall has stopped it (Chrome stops short of the buffer's end)
    fast_switch: bool = False
    fast_switch_margin_s: float = 0.0
    stall_gap_s: float = 0.0
    abandon_lock_s: float = 10.0        # no fast switching this long after an abandonment (dash.js ABANDON_LOAD)
    # the browser's <video> (`player.core.buffer`): playback stops with `stall_floor_s` still buffered and
    # a stall ends once `resume_buffer_s` is buffered again; 0, 0: it plays the buffer out and resumes at once
    stall_floor_s: float = 0.0
    resume_buffer_s: float = 0.0
    # a live session (`player.core.live`): the content looped on the wall clock, the player's
    # live delay, catch-up law and session length, and the origin the simulator plays; None: VoD
    live: LiveSettings | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.init_bytes, (int, np.integer)) and self.init_bytes >= 0):
            raise InputError(f"init_bytes must be a whole number of bytes >= 0, got {self.init_bytes!r}")
        if not (self.duration_quantum_s >= 0 and np.isfinite(self.duration_quantum_s)):
            raise InputError(f"duration_quantum_s must be a number of seconds >= 0, got {self.duration_quantum_s!r}")
        if self.resume_buffer_s < self.stall_floor_s:
            raise InputError(f"resume_buffer_s ({self.resume_buffer_s!r}) must be at least stall_floor_s "
                             f"({self.stall_floor_s!r})")
        for name in ("fast_switch_margin_s", "stall_gap_s", "abandon_lock_s", "stall_floor_s", "resume_buffer_s"):
            v = getattr(self, name)
            if not (v >= 0 and np.isfinite(v)):
                raise InputError(f"{name} must be a number of seconds >= 0, got {v!r}")
        if self.live is not None and (self.init_bytes or self.abandonment or not self.last_segment_played
                                      or self.duration_quantum_s or self.startup_is_stall or self.fast_switch):
            raise InputError(f"preset {self.name!r}: a live preset has no init segments, abandonment, duration "
                             "quantum, startup-as-stall or fast switching, and plays every segment")
        for name in ("buffer_cap_top_s", "buffer_cap_top_long_s"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and np.isfinite(v)):
                raise InputError(f"{name} must be a positive number of seconds or None, got {v!r}")

    def policy(self, name: str, params: dict | None = None) -> "abr.Policy":
        """The policy `name` means under this preset, built with the preset's defaults for it
        under the user's `params` (the one place policy parameters are merged)."""
        real = self.abr_aliases.get(name, name)
        merged = {**self.abr_defaults.get(real, {}), **self.abr_defaults.get(name, {}), **(params or {})}
        try:
            return abr.get(real, **merged)
        except (TypeError, ValueError) as exc:
            raise InputError(str(exc)) from None

    def at_time_scale(self, time_scale: float) -> "SessionPreset":
        """This preset for a session played at ``--time-scale K``: the per-request overhead
        (`LinkParams.overhead_s` and `overhead_s_per_byte`, the client's and the server's own
        work) takes wall-clock time, so K times as many session seconds; the rest is session
        time already."""
        k = float(time_scale)
        if not (np.isfinite(k) and k > 0):
            raise InputError(f"time scale must be positive, got {time_scale!r}")
        if k == 1.0 or not (self.link.overhead_s or self.link.overhead_s_per_byte):
            return self
        return replace(self, link=replace(self.link, overhead_s=self.link.overhead_s * k,
                                          overhead_s_per_byte=self.link.overhead_s_per_byte * k))

    def top_cap_s(self, content_s: float) -> float | None:
        """The buffer target at the top rung for content of this duration (None: no special one)."""
        if self.buffer_cap_top_long_s is not None and content_s >= self.long_form_s:
            return float(self.buffer_cap_top_long_s)
        return None if self.buffer_cap_top_s is None else float(self.buffer_cap_top_s)


#: Under the Sabre presets, Sabre's policy names mean Sabre's own policies (abr/algorithms/sabre.py).
SABRE_ALIASES = {"bola": "sabre-bola", "bolae": "sabre-bolae", "throughput": "sabre-throughput",
                 "dynamic": "sabre-dynamic", "dynamicdash": "sabre-dynamicdash"}
#: Sabre's command-line defaults (-gp 5, -hl 3 8; -b 25 is the preset's buffer cap).
SABRE_DEFAULTS = {
    "sabre-bola": {"gp": 5.0, "fast_half_life_s": 3.0, "slow_half_life_s": 8.0},
    "sabre-bolae": {"gp": 5.0, "fast_half_life_s": 3.0, "slow_half_life_s": 8.0},
    "sabre-throughput": {"fast_half_life_s": 3.0, "slow_half_life_s": 8.0},
    "sabre-dynamic": {"gp": 5.0, "threshold_s": 10.0, "fast_half_life_s": 3.0, "slow_half_life_s": 8.0},
    "sabre-dynamicdash": {"gp": 5.0, "low_s": 5.0, "high_s": 10.0, "fast_half_life_s": 3.0,
                          "slow_half_life_s": 8.0},
}

SABRE = SessionPreset(
    "sabre", link_preset("sabre"), buffer_cap_s=25.0, whole_segment_fits=True, first_rung=0, abandonment=False,
    abr_aliases=dict(SABRE_ALIASES), abr_defaults={name: dict(v) for name, v in SABRE_DEFAULTS.items()},
    doc="Sabre (UMass-LIDS/sabre) run with -noa: per request the trace's latency passes before any byte "
        "moves (a latency straddling periods takes part of each) with the trace clock "
        "advancing; bytes flow at each period's rate; throughput samples exclude latency; "
        "buffer cap 25 s and the next request waits until a whole segment fits; segment 1 "
        "at the lowest rung, playback starts when it arrives and that wait is not a stall; "
        "Sabre's policy names (bola, bolae, throughput, dynamic, dynamicdash) mean Sabre's own "
        "policies (sabre-bola, ...) with Sabre's defaults; a policy's delay is waited before "
        "its request; abandonment off.")

#: per-request overhead of `abrlab play` against its in-process edge on loopback: the client's and
#: the server's own work in one Python event loop (wall seconds). Measured on a quiet 2-core machine
#: (load average <= 0.2, 2026-12-05) by `abrlab fidelity player` on its TUNING traces only: the median
#: of the per-session means was 3.58 ms at time scale 1 (8 sessions) and 3.32 ms at time scale 5
#: (16 sessions). Under load it grows (4.5-10.8 ms at load 3-5): README, "Agreement with the simulator".
DEFAULT_OVERHEAD_S = 0.0035

PRESETS: dict[str, SessionPreset] = {
    "default": SessionPreset(
        "default", link_preset("trace-latency", overhead_s=DEFAULT_OVERHEAD_S), buffer_cap_s=30.0,
        doc="abrlab's semantics, as `abrlab play` against our edge does them: the trace's own latency "
            "per request (trace clock advancing) plus 3.5 ms for the client's and the server's own work "
            "(the mean measured on loopback; K times as much session time at --time-scale K), "
            "throughput excludes both, buffer cap 30 s (or the device's), playback starts when the "
            "first segment arrives, every policy asked for every segment; every 0.25 s an in-flight "
            "download is offered to the policy's abandonment hook (if it has one)."),
    "sabre": SABRE,
    "sabre-abandon": replace(
        SABRE, name="sabre-abandon", abandonment=True, abandon_interval_s=0.05, abandon_min_bytes=1500.0,
        abandon_reselect=True,
        doc="Sabre's default run (abandonment on), otherwise as `sabre`: an in-flight download is "
            "offered to the policy's abandonment rule once 50 ms have passed since the request and "
            "1500 bytes (12000 bits) have arrived, then whenever both 50 ms and 1500 more bytes have "
            "passed since the previous offer (Sabre's NetworkModel min_progress_time/size); after an "
            "abandonment the policy decides the segment afresh, as Sabre's loop does: it stores the "
            "rule's rung in abandon_to_quality but reads abandoned_to_quality, which stays None, so "
            "the rung is never fetched as such (only the rules' own side effects keep it: Sabre's "
            "BOLA takes it as its last rung, BOLA-E sizes its placeholder for it)."),
    "pensieve": SessionPreset(
        "pensieve", link_preset("pensieve"), buffer_cap_s=60.0, whole_segment_fits=False,
        wait_quantum_s=0.5, startup_is_stall=True, first_rung=1, throughput_includes_latency=True,
        qoe_skip_first=True, play_out_at_end=False, abandonment=False,
        duration_quantum_s=0.1, last_segment_played=False,
        abr_defaults={"bba": {"reservoir_s": 5.0, "cushion_s": 10.0, "variant": "pensieve"},
                      "robustmpc": {"horizon": 5}, "mpc": {"horizon": 5}},
        doc="Pensieve's test environment (hongzimao/pensieve test/fixed_env.py): throughput = "
            "trace rate × 0.95, a fixed 80 ms added per segment outside trace time (the trace's "
            "own latency ignored), throughput samples include it; buffer cap 60 s drained in "
            "0.5 s sleeps; segment 1 at rung 1; stalls counted from the first request; every "
            "segment adds its duration rounded to 0.1 s (EnvivioDash3's 3.993 s count as Pensieve's "
            "4 s chunks) and the last segment is not played (Pensieve plays 48 of EnvivioDash3's "
            "49); linear QoE summed over segments 2..N; the session ends when the last segment "
            "played arrives. bba is Pensieve's test/bb.py: reservoir 5 s, cushion 10 s, "
            "rung = ⌊(rungs − 1)(B − 5 s)/10 s⌋ with no hysteresis."),
    "dashjs": SessionPreset(
        "dashjs", link_preset("trace-latency", overhead_s=0.018), buffer_cap_s=18.0, whole_segment_fits=True,
        wait_quantum_s=0.5, abandon_interval_s=0.05, init_bytes=710, init_at_start=False, init_revalidated=True,
        buffer_cap_top_s=30.0, buffer_cap_top_long_s=60.0, long_form_s=600.0,
        fast_switch=True, fast_switch_margin_s=0.0, stall_gap_s=0.09,
        doc="dash.js 5 in a browser (player/interop): the trace's own latency before the first byte of every "
            "request; throughput samples exclude it (Resource Timing responseEnd - responseStart); the next "
            "segment is requested when buffer + segment < bufferTimeDefault 18 s (bufferTimeAtTopQuality 30 s "
            "after a choice of the top rung, 60 s for content of 600 s or more), a full buffer re-checked every "
            "500 ms; playback starts when the first segment is in; the dashjs policy picks segment 1 at the rung "
            "at or below 1000 kbit/s; in-flight downloads are offered to the abandonment rule every 50 ms (XHR "
            "progress events); before a segment at another representation than the last request's, that "
            "representation's init segment (710 bytes; a 304 without body when fetched before), the first one "
            "before the session clock starts (as the interop harness's clock does); 18 ms per request for "
            "dash.js's append and rescheduling (the measured mean over 226 requests); fast switching as dash.js "
            "ships it (player.core.fast_switch): a quality change to a rung above the one buffered at the playhead "
            "re-fetches the buffered segments from the segment being played on (margin 0: dash.js's 1.5 × "
            "fragmentDuration is 1.5 × null), one request after another, each decided as usual; the buffer does "
            "not grow meanwhile; a version fetched before is a 304 (no body) measured as its first download; a "
            "re-fetched version plays if it arrives before its segment starts; after a stall the playhead reads "
            "0.09 s short (Chrome stops a stalled playhead short of the buffer's end). Not modelled: BOLA's "
            "requested delays, the 20 s request timeout."),
    "live": SessionPreset(
        "live", link_preset("trace-latency"), buffer_cap_s=30.0, abandonment=False,
        live=LiveSettings(catchup="none"),
        doc="A live stream of whole segments (`abrlab serve --live`): the content looped on the wall clock, a "
            "segment requested once it is complete (availability start = its end), the live delay in dash.js's "
            "order of precedence (here 4 segment durations: the origin writes no ServiceDescription nor "
            "suggestedPresentationDelay for it), playback from the live edge − delay, no catch-up (dash.js's "
            "default on a stream that is not low latency), buffer target min(30 s, delay), the session ending "
            "after 300 s (--live-duration); a segment that left the 60 s time-shift buffer makes the player seek "
            "to the live edge. Link and samples as `default`; no abandonment."),
    "live-ll": SessionPreset(
        "live-ll", link_preset("trace-latency"), buffer_cap_s=30.0, whole_segment_fits=False, abandonment=False,
        live=LiveSettings(catchup="dashjs", chunk_s=0.5),
        doc="Low-latency live (`abrlab serve --live --low-latency`): 0.5 s CMAF chunks, a segment requested once "
            "its first chunk is complete (availabilityTimeOffset = segment − chunk) and sent chunk by chunk as "
            "produced (delivery at min(link, producer)), each chunk's media joining the buffer on arrival; the "
            "live delay from the ServiceDescription (target 3.5 s, min 2.625 s, max 7 s, playback rate "
            "0.96-1.04, as the origin writes it), dash.js's default catch-up (sigmoid rate within the "
            "ServiceDescription's bounds, rate 1 while the buffer is at or below dash.js's 0.3 s stall threshold, "
            "a seek to the live edge beyond maxDrift = max − target + 0.5 s); buffer target min(30 s, delay), "
            "requests not held for a whole segment (dash.js in low-latency mode); throughput samples over the "
            "whole request (gaps included); policies with chunk_estimator read the chunk timing."),
    "dashjs-live": SessionPreset(
        "dashjs-live", link_preset("trace-latency", overhead_s=0.018), buffer_cap_s=18.0, whole_segment_fits=False,
        abandonment=False, live=LiveSettings(catchup="dashjs", chunk_s=0.5, first_chunk_share=0.42,
                                              first_read_bytes=1500.0, first_read_s=0.005, shaped_reads=True,
                                              buffer_target_at_most_delay=False), stall_floor_s=0.057,
        resume_buffer_s=0.3, startup_threshold_s=0.15,
        doc="dash.js 5 in a browser playing our low-latency origin (`abrlab interop agreement --live "
            "--low-latency` compares the two; README \"dash.js plays the live origin\"): as live-ll, with "
            "dash.js 5's buffer target, bufferTimeDefault 18 s not capped by the live delay (its "
            "ScheduleController uses the unadjusted value, so the buffer fills as far as segments are "
            "available), and the 18 ms per request of the `dashjs` preset. The interop's encoded segments: "
            "42% of a segment's bytes in its first chunk (the keyframe; 34-46% by rung, measured on the "
            "twitch-3rung encoding, 0.1 s chunks; a content description with its own chunks, as "
            "`interop agreement --live --low-latency` writes for the encoded content, replaces the share). "
            "dash.js's moof parsing: it sees a chunk begin with its first read, which behind our shaper is "
            "the chunk's first grant (1,500 bytes, or 5 ms of capacity when more: the page's read log and "
            "the edge's write log show one read per grant), a chunk-aligned grant for a segment still produced, "
            "one grid of grants over the whole body for a segment complete when asked, where dash.js sees "
            "each chunk after the first one grant late. With the dashjs policy, dash.js's live rules: no InsufficientBufferRule in "
            "low-latency mode, the ThroughputRule at any buffer level on a dynamic stream. Chrome's <video> as "
            "measured under dash.js 5.2.1 low latency with 0.1 s chunks (6 sessions, 41 stalls): it starts "
            "playing with 0.16-0.21 s buffered (0.15 s here: the chunk that passes it), stops with 0.048-0.085 "
            "s still buffered (median 0.057 s, here) and resumes with 0.25-0.50 s (25 of 33 at 0.34-0.37 s, "
            "three chunks after the stop: 0.3 s here). Not modelled: the MPD refreshes (one per "
            "minimumUpdatePeriod, sharing the link)."),
}
PRESETS["dashjs-no-fast-switch"] = replace(
    PRESETS["dashjs"], name="dashjs-no-fast-switch", fast_switch=False, stall_gap_s=0.0,
    doc="dash.js 5 with streaming.buffer.fastSwitchEnabled false (`abrlab interop --fast-switch off`): the "
        "dashjs preset without fast switching; a quality change applies from the next new segment on.")


def get(name: str) -> SessionPreset:
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def names() -> list[str]:
    return list(PRESETS)


#: `LiveSettings` fields a command line may override (`variant`)
LIVE_OVERRIDES = ("duration_s", "chunk_s", "target_latency_s", "catchup", "delay_s")


def variant(name: str, **live: object) -> SessionPreset:
    """Preset `name` with some of its live settings replaced (None values are left alone):
    `abrlab simulate/compare --live-duration`, `--chunk-duration`, `--target-latency`,
    `--catchup`, `--live-delay`. A VoD preset takes none."""
    p = get(name)
    given = {k: v for k, v in live.items() if v is not None}
    unknown = set(given) - set(LIVE_OVERRIDES)
    if unknown:
        raise InputError(f"unknown live setting(s) {', '.join(sorted(unknown))}")
    if not given:
        return p
    if p.live is None:
        live_names = ", ".join(n for n, q in PRESETS.items() if q.live is not None)
        raise InputError(f"preset {name!r} is not live: the live options apply to {live_names}")
    return replace(p, live=replace(p.live, **given))
