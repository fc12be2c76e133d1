"""Option parsing shared by commands (ABR parameters, lists, the trace format); errors are
one-line UsageErrors."""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal

import abr
from netem import formats
from netem.errors import InputError

FORMAT_HELP = "one of " + ", ".join(formats.FORMATS)


def add_trace_format(p: argparse.ArgumentParser | argparse._ArgumentGroup, what: str = "input") -> None:
    """`--from FMT` (dest `trace_format`): the format of the trace file(s), for files whose
    content does not say (every command that reads traces has it, with the same name)."""
    p.add_argument("--from", dest="trace_format", default=None, metavar="FMT",
                   help=f"{what} trace format, {FORMAT_HELP} (default: detected from content)")


def add_live_options(p: argparse.ArgumentParser) -> None:
    """The options that adjust a live preset (live, live-ll, dashjs-live) for one run."""
    g = p.add_argument_group("live sessions (with a live preset: live, live-ll, dashjs-live)")
    g.add_argument("--live-duration", type=float, default=None, metavar="S",
                   help="how long each live session lasts, seconds of session time; the content loops as the "
                        "live origin loops it (default: the preset's, 300)")
    g.add_argument("--chunk-duration", type=float, default=None, metavar="S",
                   help="low-latency CMAF chunk duration, shorter than a segment (default: the preset's: 0.5 for "
                        "live-ll and dashjs-live, none for live)")
    g.add_argument("--target-latency", type=float, default=None, metavar="S",
                   help="the ServiceDescription's target latency the simulated origin writes (default: 3.5 with "
                        "chunks, as `abrlab serve --live --low-latency`; none without)")
    g.add_argument("--catchup", default=None, metavar="LAW",
                   help="catch-up law: none, dashjs, dashjs-lolp, shaka, media3 (default: the preset's)")
    g.add_argument("--live-delay", type=float, default=None, metavar="S",
                   help="the player's own live delay, before the manifest's (dash.js delay.liveDelay; default: "
                        "none, dash.js's order of precedence)")


def live_overrides(args: argparse.Namespace) -> dict:
    """The live settings given on the command line (`player.core.presets.variant`'s)."""
    for opt, v in (("--live-duration", args.live_duration), ("--chunk-duration", args.chunk_duration),
                   ("--target-latency", args.target_latency), ("--live-delay", args.live_delay)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise InputError(f"{opt} must be a positive number of seconds, got {v!r}")
    return {"duration_s": args.live_duration, "chunk_s": args.chunk_duration,
            "target_latency_s": args.target_latency, "catchup": args.catchup, "delay_s": args.live_delay}


def parse_value(text: str):
    """`5` → 5, `0.9` → 0.9, `true` → True, anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(items: list[str] | None, *, scoped: bool = False) -> dict:
    """`k=v` pairs; with `scoped`, `policy.k=v` pairs grouped by policy name."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--abr-param expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        if scoped:
            if "." not in key:
                raise InputError(f"--abr-param expects policy.key=value here, got {item!r}")
            pol, k = key.split(".", 1)
            out.setdefault(pol, {})[k] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out


def split_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def check_policy(name: str, params: dict) -> None:
    """Fail early, in the main process, on an unknown policy or parameter."""
    try:
        abr.get(name, **params)
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so a server command ends cleanly (exit 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    return stop
