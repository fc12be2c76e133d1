"""`abrlab content`: package content descriptions as DASH (`make`) and summarise them (`info`)."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from netem.errors import InputError
from netem import content as content_mod
from netem import package
from netem.cenc import Protection
from netem.content import load
from netem.content import save
from netem.encode import encode_presentation
from netem.errors import UsageError
from netem.package import parse_ladder

ADDRESSING_HELP = (
    "number: SegmentTemplate $Number$ (v0/init.mp4, v0/1.m4s …); "
    "timeline: SegmentTemplate + SegmentTimeline $Time$ (v0/t0.m4s …); "
    "list: SegmentList (v0/1.m4s …); "
    "base: SegmentBase, one file per rung (v0.mp4: init, sidx, fragments; isoff-on-demand)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "content",
        help="package a content description as a DASH presentation; summarise descriptions",
        description="Content descriptions (bitrate ladder + every segment's size) and DASH packaging.",
    )
    csub = p.add_subparsers(dest="content_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])

    m = csub.add_parser(
        "make",
        help="write manifest.mpd and real ISO-BMFF segments of exactly the described sizes",
        description=(
            "Write OUT_DIR/manifest.mpd and its init and media segments. Without --encode, segments "
            "are real ISO-BMFF (ftyp/moov init; styp/moof/mdat media; sidx for SegmentBase) whose "
            "sizes are EXACTLY those of the content description, filled with deterministic "
            "pseudo-random payload (not decodable). With --encode, video is really encoded (H.264, "
            "libx264, test pattern) at each rung's bitrate and audio as AAC; sizes are then the "
            "encoder's, not the description's. Addressing modes — " + ADDRESSING_HELP + "."
        ),
    )
    m.add_argument("out_dir", metavar="OUT_DIR", help="directory to write (created if needed; files are replaced)")
    src = m.add_argument_group("content (one of)")
    src.add_argument("--movie", metavar="M",
                     help="content description: Sabre movie JSON, our JSON/TOML, or a Pensieve video_size_N folder "
                          "(default: none; give --movie or --ladder)")
    src.add_argument("--ladder", metavar="RATES",
                     help="synthetic VBR content with this ladder, e.g. 300k,750k,1.2M,2.85M (bit/s; k, M suffixes; "
                          "default: none)")
    src.add_argument("--duration", metavar="SECONDS", help="length of synthetic content in seconds (with --ladder; no default)")
    src.add_argument("--segment", metavar="SECONDS", default="4", help="segment duration with --ladder (default 4)")
    src.add_argument("--max-duration", metavar="SECONDS", default=None,
                     help="keep only the first SECONDS of the content (default: all)")
    m.add_argument("--addressing", choices=("number", "timeline", "list", "base"), default="number",
                   help="segment addressing in the MPD (default number)")
    m.add_argument("--audio", action="store_true", help="add an AAC-LC audio adaptation set (mp4a.40.2, 48 kHz)")
    m.add_argument("--audio-bitrate", metavar="RATE", default=None,
                   help="audio bitrate (default: the description's, else 128k)")
    m.add_argument("--encode", action="store_true",
                   help="really encode (H.264 via libx264 and AAC, through PyAV) instead of sized filler")
    m.add_argument("--max-height", type=int, default=None, metavar="PIXELS",
                   help="with --encode: scale rungs taller than this many pixels down (keeping aspect) to encode "
                        "faster (default: no limit)")
    m.add_argument("--preset", default="veryfast",
                   choices=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                            "veryslow"),
                   help="with --encode: x264 preset (default veryfast)")
    m.add_argument("--protect", choices=("clearkey",), default=None,
                   help="CENC-encrypt (AES-128-CTR) with a ClearKey key; MPD names ClearKey, Widevine, PlayReady "
                        "(default: clear)")
    m.add_argument("--key", metavar="HEX", default=None, help="16-byte content key, 32 hex digits (default: fixed)")
    m.add_argument("--kid", metavar="HEX", default=None, help="16-byte key ID, 32 hex digits (default: fixed)")
    m.add_argument("--seed", type=int, default=0, help="seed for synthetic sizes and payload bytes (default 0)")
    m.add_argument("--save-content", metavar="PATH", default=None,
                   help="also write the content description that was packaged (our JSON, or TOML by extension; "
                        "default: not written)")
    m.set_defaults(func=run_make)

    i = csub.add_parser("info", help="summarise a content description (JSON)",
                        description="Load a content description and print its summary as JSON.")
    i.add_argument("movie", metavar="M", help="content description (any supported format)")
    i.set_defaults(func=run_info)


def _seconds(text: str | None, name: str) -> float:
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{text!r} is not a number of seconds", where=name) from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"must be a positive number of seconds, got {text!r}", where=name)
    return v


def _load_content(args: argparse.Namespace):

    if bool(args.movie) == bool(args.ladder):
        raise UsageError("give exactly one of --movie M or --ladder RATES --duration SECONDS")
    if args.movie:
        if args.duration is not None:
            raise UsageError("--duration goes with --ladder; use --max-duration to shorten a --movie")
        c = content_mod.load(args.movie)
    else:
        if args.duration is None:
            raise UsageError("--ladder needs --duration SECONDS")
        rates = parse_ladder(args.ladder)
        duration = _seconds(args.duration, "--duration")
        segment = _seconds(args.segment, "--segment")
        if duration / segment > content_mod.MAX_CELLS:
            raise InputError(f"{duration:g} s of {segment:g} s segments is too many segments", where="--duration")
        c = content_mod.synthetic(rates, duration_s=duration, segment_duration_s=segment, seed=args.seed,
                                  name=f"ladder-{len(rates)}rungs-{duration:g}s")
    if args.max_duration is not None:
        c = c.truncated(_seconds(args.max_duration, "--max-duration"))
    return c


def run_make(args: argparse.Namespace) -> int:

    if (args.key or args.kid) and not args.protect:
        raise UsageError("--key/--kid need --protect clearkey")
    if args.max_height is not None and args.max_height < 16:
        raise InputError("must be at least 16 pixels", where="--max-height")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", where=str(out))
    c = _load_content(args)
    audio_bps = package.parse_bitrate(args.audio_bitrate, "--audio-bitrate") if args.audio_bitrate else None
    protection = None
    if args.protect:

        protection = Protection.from_hex(args.key, args.kid)
    t0 = time.perf_counter()
    if args.encode:

        pres = encode_presentation(c, args.addressing, audio=args.audio, protection=protection,
                                   audio_bitrate_bps=audio_bps, max_height=args.max_height, preset=args.preset,
                                   seed=args.seed, progress=lambda msg: print(f"content make: {msg}", file=sys.stderr))
        described = pres.content
    else:
        pres = package.SyntheticPresentation(c, args.addressing, audio=args.audio, protection=protection,
                                             seed=args.seed, audio_bitrate_bps=audio_bps)
        described = c
    files = pres.files()
    try:
        pres.write(out)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", where=str(exc.filename or out)) from None
    if args.save_content:

        save(described, args.save_content)
    report = {
        "out_dir": str(out), "manifest": str(out / package.MANIFEST), "addressing": args.addressing,
        "encoded": bool(args.encode), "content": described.name, "segments": described.n_segments,
        "rungs": described.n_rungs, "duration_s": round(pres.duration_s(), 6), "audio": bool(args.audio),
        "files": len(files), "bytes": sum(files.values()), "wall_s": round(time.perf_counter() - t0, 3),
    }
    if protection is not None:
        report.update({"protection": "cenc (ClearKey)", "kid": protection.kid_hex, "key": protection.key_hex,
                       "license_url": protection.license_url})
    print(json.dumps(report, indent=1))
    return 0


def run_info(args: argparse.Namespace) -> int:

    print(json.dumps(load(args.movie).summary(), indent=1))
    return 0
