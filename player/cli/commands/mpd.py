"""`abrlab mpd info`: what a DASH manifest holds, as a tree or as JSON.

A manifest that is unsupported (live, xlink, limits) or malformed exits with status 2 and
one stderr line starting with `unsupported: ` or `invalid: ` (`unavailable: ` when the
file or URL cannot be read), never a traceback. An http(s) URL is fetched as the player
fetches it (`player.http.manifests`).
"""
from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from player.dash.manifest import ManifestError
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
            "marked ignored. Exit status 2 with one line 'unsupported: ...' or 'invalid: ...' "
            "on stderr when the manifest cannot be played (live presentations are not "
            "supported yet)."
        ),
    )
    info.add_argument("manifest", metavar="FILE_OR_URL", help="path, file:// or http(s):// URL of an MPD")
    info.add_argument("--json", action="store_true",
                      help="print one JSON object instead of a tree")
    info.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def run_info(args: argparse.Namespace) -> int:
    try:
        pres = load(args.manifest).require_static()
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
    return "?" if v is None else f"{v:.3f} s"


def render_tree(pres):
    """A rich Tree: periods → adaptation sets → representations."""
    head = (f"[bold]MPD[/bold] {pres.type}, duration {_secs(pres.duration_s)}, "
            f"min buffer {_secs(pres.min_buffer_time_s)}")
    if pres.source_url:
        head += f"  [dim]{escape(pres.source_url)}[/dim]"
    tree = Tree(head)
    for note in pres.notes:
        tree.add(f"[yellow]note:[/yellow] {escape(note)}")
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
                n = r.segment_count
                segs = (f"{n} segment{'' if n == 1 else 's'}" if n is not None
                        else "segments: sidx to fetch" if r.needs_sidx else "segments: ?")
                fields = [f"{_rate(r.bandwidth_bps)}", res, fps, r.codecs or "", segs,
                          f"({r.addressing})"]
                line = f"[green]{escape(r.id)}[/green] " + escape("  ".join(f for f in fields if f))
                if r.note:
                    line += f" [yellow]({escape(r.note)})[/yellow]"
                anode.add(line)
    return tree
