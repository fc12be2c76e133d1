"""Option parsing shared by commands (ABR parameters, lists, the trace format); errors are
one-line UsageErrors."""
from __future__ import annotations

import argparse
import json
import math
import signal
from typing import TYPE_CHECKING, Sequence

import abr
from netem import formats
from netem.errors import InputError

if TYPE_CHECKING:
    import asyncio

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


def parse_params(items: list[str] | None, *, policies: Sequence[str] | None = None) -> dict:
    """`k=v` pairs. With `policies` (the specs given to --abr), `POLICY.k=v` pairs grouped by
    policy spec: POLICY is a name as given (`bola`, `pol/harm.py:HarmonicStep`) or a file
    policy's class name (`HarmonicStep`); a plain `k=v` is allowed when there is one policy."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--abr-param expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        if policies is None:
            out[key] = parse_value(value)
            continue
        spec, k = policy_of_param(key, item, policies)
        out.setdefault(spec, {})[k] = parse_value(value)
    return out


def policy_of_param(key: str, item: str, policies: Sequence[str]) -> tuple[str, str]:
    """(policy spec, parameter name) that `key` (of `item`) means among `policies`."""
    names = []
    for spec in policies:
        names.append((spec, spec))
        if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
            names.append((spec.rsplit(":", 1)[1], spec))
    best = max((n for n in names if key.startswith(n[0] + ".") and len(key) > len(n[0]) + 1),
               key=lambda n: len(n[0]), default=None)
    if best is not None:
        return best[1], key[len(best[0]) + 1:]
    known = ", ".join(policies)
    if "." in key:
        raise InputError(f"--abr-param {item!r} names policy {key.rsplit('.', 1)[0]!r}, which is not in --abr "
                         f"({known})")
    if len(policies) == 1:
        return policies[0], key
    raise InputError(f"--abr-param {item!r}: say which policy, as POLICY.{key}=VALUE (--abr has {known})")


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
    import asyncio  # here: the commands that do not serve (compare, simulate) need not pay ~40 ms for it

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    return stop
