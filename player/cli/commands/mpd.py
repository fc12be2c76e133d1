"""`abrlab mpd info`: what a DASH manifest holds, as a tree or as JSON.

Static (VoD) and live (type="dynamic") manifests are both shown; for a live one the tree
and the JSON add its timing: availability start time (ISO 8601 and seconds since the
epoch), publish time, suggested presentation delay, refresh period (minimumUpdatePeriod),
time-shift buffer depth, the UTCTiming sources and the low-latency signals
(availabilityTimeOffset, availabilityTimeComplete, ServiceDescription). A manifest that
is unsupported (xlink, limits) or malformed exits with status 2 and one stderr line
starting with `unsupported: ` or `invalid: ` (`unavailable: ` when the file or URL cannot
be read), never a traceback. An http(s) URL is fetched as the player fetches it
(`player.http.manifests`: redirects, size cap, retry budget); a local path or file:// URL
is read by `player.dash.loading`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from player.dash.errors import ManifestError
from player.dash.model import Presentation, Representation
from player.http.manifests import load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mpd",
        help="inspect MPEG-DASH manifests (MPD)",
        description="Inspect MPEG-DASH manifests (MPD) the way the player reads them.",
    )
    mpd_sub = p.add_subparsers(dest="mpd_command", metavar="SUBCOMMAND")
    info = mpd_sub.add_parser(
        "info",
        help="periods, adaptation sets and representations of a manifest",
        description=(
            "Parse a manifest (local file or http/https URL) and print its periods, adaptation "
            "sets and representations: bandwidth (bit/s), resolution, codecs, segment count, "
            "addressing mode and content protection. Text and image tracks are listed but "
            "marked ignored. For a live manifest (type=dynamic) also its timing: availability "
            "start time, publish time, suggested delay, refresh period, time-shift depth, "
            "timing sources and low-latency attributes. Exit status 2 with one line "
            "'unsupported: ...' or 'invalid: ...' on stderr when the manifest cannot be read."
        ),
    )
    info.add_argument("manifest", metavar="FILE_OR_URL", help="path, file:// or http(s):// URL of an MPD")
    info.add_argument("--json", action="store_true",
                      help="print one JSON object instead of a tree")
    info.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def run_info(args: argparse.Namespace) -> int:
    try:
        pres = load(args.manifest)
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(pres.to_dict()))
        return 0
    Console().print(render_tree(pres))
    return 0


def _rate(bps: float) -> str:
    if bps >= 1e6:
        return f"{bps / 1e6:.2f} Mbit/s"
    return f"{bps / 1e3:.1f} kbit/s"


def _secs(v: float | None) -> str:
    if v is not None and math.isinf(v):
        return "INF"
    return "?" if v is None else f"{v:.3f} s"


def _live_lines(pres: Presentation) -> list[str]:
    """The live timing, one plain line per item (the tree escapes and indents them)."""
    live = pres.live_dict()
    ast = live["availability_start_time"]
    lines = [
        "availability start: " + (f"{ast} ({pres.availability_start_time_s:.3f} s since the epoch)"
                                  if ast else "?"),
        "publish time: " + (f"{live['publish_time']} ({pres.publish_time_s:.3f} s since the epoch)"
                            if live["publish_time"] else "?"),
        f"suggested delay: {_secs(pres.suggested_presentation_delay_s)}, "
        f"refresh (minimumUpdatePeriod): {_secs(pres.minimum_update_period_s)}, "
        f"time-shift depth: {_secs(pres.time_shift_buffer_depth_s)}, "
        f"max segment duration: {_secs(pres.max_segment_duration_s)}",
    ]
    for u in pres.utc_timings:
        status = "" if u.supported else " (not supported)"
        lines.append(f"timing source: {u.method or u.scheme_id_uri} {u.value or ''}{status}".rstrip())
    if not pres.utc_timings:
        lines.append("timing source: none (the client's own clock)")
    for d in pres.service_descriptions:
        parts = [f"latency {name} {_secs(v)}" for name, v in (
            ("target", d.latency_target_s), ("min", d.latency_min_s), ("max", d.latency_max_s))
            if v is not None]
        parts += [f"playback rate {name} {v:g}" for name, v in (
            ("min", d.playback_rate_min), ("max", d.playback_rate_max)) if v is not None]
        lines.append(f"service description{' ' + d.id if d.id else ''}: "
                     + (", ".join(parts) or "no latency or playback-rate targets"))
    return lines


def _segments_text(r: Representation) -> str:
    n = r.segment_count
    if n is not None:
        return f"{n} segment{'' if n == 1 else 's'}"
    if r.needs_sidx:
        return "segments: sidx to fetch"
    t = r.live_template
    if t is not None:
        return f"live: from #{t.start_number}, {t.duration_s:.3f} s each"
    return "segments: ?"


def _low_latency_text(r: Representation) -> str:
    bits = []
    if r.availability_time_offset_s is not None:
        bits.append(f"availabilityTimeOffset {_secs(r.availability_time_offset_s)}")
    if r.availability_time_complete is not None:
        bits.append(f"availabilityTimeComplete {str(r.availability_time_complete).lower()}")
    return ", ".join(bits)


def render_tree(pres: Presentation):
    """A rich Tree: periods → adaptation sets → representations (and live timing)."""
    head = (f"[bold]MPD[/bold] {pres.type}, duration {_secs(pres.duration_s)}, "
            f"min buffer {_secs(pres.min_buffer_time_s)}")
    if pres.source_url:
        head += f"  [dim]{escape(pres.source_url)}[/dim]"
    tree = Tree(head)
    for note in pres.notes:
        tree.add(f"[yellow]note:[/yellow] {escape(note)}")
    if pres.is_live:
        live = tree.add("[bold]live[/bold]")
        for line in _live_lines(pres):
            live.add(escape(line))
    mpd_cp = ", ".join(sorted({cp.system_name for cp in pres.protection}))
    if mpd_cp:
        tree.add(f"protection (MPD): {escape(mpd_cp)}")
    for i, p in enumerate(pres.periods):
        pid = f" {p.id!r}" if p.id is not None else ""
        pnode = tree.add(f"[bold]Period {i + 1}{escape(pid)}[/bold] start {_secs(p.start_s)}, "
                         f"duration {_secs(p.duration_s)}")
        for a in p.adaptation_sets:
            label = f"AdaptationSet {a.id if a.id is not None else '-'} [cyan]{a.content_type}[/cyan]"
            bits = [x for x in (a.mime_type, a.codecs, f"lang={a.lang}" if a.lang else None) if x]
            if bits:
                label += " " + escape(" ".join(bits))
            systems = sorted({cp.system_name for cp in a.protection})
            if systems:
                label += f" [magenta]protected: {escape(', '.join(systems))}[/magenta]"
            if a.ignored:
                label += f" [dim](ignored: {escape(a.note or '')})[/dim]"
            elif a.note:
                label += f" [yellow]({escape(a.note)})[/yellow]"
            anode = pnode.add(label)
            for r in a.ladder:
                res = f"{r.width}x{r.height}" if r.width and r.height else ""
                fps = f"{r.frame_rate:g} fps" if r.frame_rate else ""
                fields = [f"{_rate(r.bandwidth_bps)}", res, fps, r.codecs or "", _segments_text(r),
                          f"({r.addressing})", _low_latency_text(r) if pres.is_live else ""]
                line = f"[green]{escape(r.id)}[/green] " + escape("  ".join(f for f in fields if f))
                if r.note:
                    line += f" [yellow]({escape(r.note)})[/yellow]"
                anode.add(line)
    return tree
