"""`abrlab interop dashjs|agreement --live [--low-latency]`: dash.js on our live origin.

    abrlab interop dashjs --live --low-latency --target-latency 3 --chunk-duration 0.1 --duration 600 \\
                          --trace T --movie M [--json]
    abrlab interop agreement --live --low-latency ... --duration 150 --out DIR TRACE...

The live options, their checks, and the live agreement: every trace played live in dash.js
(`player.cli.interop.live`) and simulated with `--abr dashjs --preset dashjs-live` (its live
settings set to the same origin and duration) on the same encoded content, then compared on
the share of segments at the same rung, the mean latency and the stall time. Kept apart
from `interop.py`, which holds the VoD commands and what both share.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
from pathlib import Path

from netem.errors import UsageError
from player.cli.interop.dashjs import agreement_rows, rewrite_rows, rows_to_resimulate
from player.cli.interop.live import LiveRun, chunked_movie, reassemble_live, run_live_session
from player.core.presets import SessionPreset, variant

#: the goals of issue 16 §4 for one live session's prediction
SAME_RUNG_GOAL = 0.8
LATENCY_GOAL_S = 0.5
STALL_GOAL_S = 1.0


def add_live_args(q: argparse.ArgumentParser) -> None:
    g = q.add_argument_group("live (dash.js plays `abrlab serve --live`'s origin)")
    g.add_argument("--live", action="store_true",
                   help="play the encoded content as a live stream from our live origin (looped on the wall clock) "
                        "instead of VoD; the session ends after --duration seconds")
    g.add_argument("--low-latency", action="store_true",
                   help="with --live: low-latency DASH (CMAF chunks sent as produced, a ServiceDescription); "
                        "dash.js runs in low-latency mode")
    g.add_argument("--duration", metavar="S", type=float, default=None,
                   help="with --live (needed): the session's length in seconds, from the first media request (no default: a live session needs it)")
    g.add_argument("--target-latency", metavar="S", type=float, default=None,
                   help="with --low-latency: the ServiceDescription's target latency (default 3.5)")
    g.add_argument("--chunk-duration", metavar="S", type=float, default=None,
                   help="with --low-latency: CMAF chunk duration, shorter than a segment (default 0.5)")


def live_run(args: argparse.Namespace) -> LiveRun | None:
    """The live session the options ask for (None: VoD); one usage error line otherwise."""
    if not args.live:
        for name in ("low_latency", "duration", "target_latency", "chunk_duration"):
            if getattr(args, name) not in (None, False):
                raise UsageError(f"--{name.replace('_', '-')} needs --live")
        return None
    if args.duration is None:
        raise UsageError("--live needs --duration S (a live session ends by duration)")
    if args.time_scale != 1.0:
        raise UsageError("--time-scale applies to VoD sessions only (dash.js's live clock is the browser's)")
    vod_only = [f"--{n.replace('_', '-')}" for n in ("fast_switch", "abandonment") if getattr(args, n) != "default"]
    if args.init != "shaped":
        vod_only.append("--init")
    if vod_only:
        raise UsageError(f"{', '.join(vod_only)} apply to VoD sessions only")
    return LiveRun(args.duration, args.low_latency, args.target_latency, args.chunk_duration).check()


def live_session(args: argparse.Namespace, trace: str, run: LiveRun, setup, note):
    return asyncio.run(run_live_session(trace, args.movie, run, cache_dir=args.encode_cache,
                                        max_duration_s=args.max_duration, max_height=args.max_height,
                                        timeout_s=args.timeout, progress=note, setup=setup))


def print_live(summary: dict) -> None:
    """The live summary in a few lines (what `--json` gives in full)."""
    s = summary
    ch = s.get("chosen") or []
    print(f"{s['player']} live{' low-latency' if s['live']['low_latency'] else ''} on {s['trace']} for "
          f"{s['live']['duration_s']:g} s: {len(ch)} segments, mean bitrate {s['avg_bitrate_bps'] / 1e3:.0f} kbit/s")
    print(f"latency mean {s['latency_mean_s']:.3f} s, p95 {s['latency_p95_s']:.3f} s, max {s['latency_max_s']:.3f} s "
          f"(dash.js target {s['target_latency_s']:.3f} s); playback rate mean {s['playback_rate_mean']:.4f}")
    print(f"stalls {s['rebuffer_count']} ({s['rebuffer_s']:.2f} s); startup {s['startup_s']:.2f} s; "
          f"getLowLatencyModeEnabled() {s['low_latency_mode']}")


def live_preset(run: LiveRun, name: str | None = None, first_number: int | None = None) -> SessionPreset:
    """The preset predicting a live dash.js session: `dashjs-live` (or `name`) with the same
    origin (chunk, target latency; whole segments without low latency, and then no catch-up,
    as dash.js has none there) and session length, joining at the segment dash.js
    joined at (`first_number`, the $Number$ of its first media request: live segment
    first_number − 1, the content's segment (first_number − 1) mod its length), since the
    content's segments differ in size (an encoder's first segment is the largest)."""
    p = variant(name or "dashjs-live", **run.preset_overrides())
    if not run.low_latency:   # whole segments: no chunks, no ServiceDescription, no catch-up (dash.js's default)
        p = dataclasses.replace(p, live=dataclasses.replace(p.live, chunk_s=None, target_latency_s=None,
                                                            catchup="none", catchup_params=()))
    if first_number is not None:
        p = dataclasses.replace(p, live=dataclasses.replace(p.live, join_segment=max(int(first_number) - 1, 0)))
    return p


def compare_live(real: dict, sim: dict) -> dict:
    """The agreement figures of one live session: the share of segments at the same rung over
    the segments both sessions got (the first min(n_real, n_sim), each from its first
    request), the mean-latency, stall-time and mean-bitrate differences (real − sim), and
    whether the goals hold (same rung ≥ 80 %, latency within 0.5 s, stalls within 1 s, and
    the dash.js run passed its watchdog)."""
    a, b = real["chosen"], sim["chosen"]
    n = min(len(a), len(b))
    same = sum(1 for x, y in zip(a[:n], b[:n]) if x == y) / n if n else math.nan
    lat = real["latency_mean_s"] - sim["latency_mean_s"]
    stall = real["rebuffer_s"] - sim["rebuffer_s"]
    sb = sim["avg_bitrate_bps"]
    ok = (n > 0 and same >= SAME_RUNG_GOAL and abs(lat) <= LATENCY_GOAL_S and abs(stall) <= STALL_GOAL_S
          and bool(real.get("ok", True)))
    return {"same_rung": same, "segments_compared": n, "latency_diff_s": lat, "stall_diff_s": stall,
            "bitrate_diff": (real["avg_bitrate_bps"] - sb) / sb if sb else math.nan, "ok": bool(ok)}


def _config(args: argparse.Namespace, run: LiveRun) -> dict:
    return {"movie": str(args.movie), "max_duration": args.max_duration, "max_height": args.max_height,
            "live": {"duration_s": run.duration_s, "low_latency": run.low_latency,
                     "target_latency_s": run.target_latency_s, "chunk_s": run.chunk_s}}


def run_agreement_live(args: argparse.Namespace, run: LiveRun, setup_fn, note, simulate_prediction) -> int:
    """`interop agreement --live`: see the module docstring. Results go to OUT/agreement.jsonl
    as they come (a rerun skips traces already there with the same configuration)."""
    out = Path(args.out)
    if args.resimulate:
        return _resimulate(args, run, out, simulate_prediction)
    setup = setup_fn()
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "agreement.jsonl"
    done = agreement_rows(res_path)
    rows = []
    preset = live_preset(run, args.preset)
    for i, trace in enumerate(args.traces):
        if trace in done and done[trace].get("config") == _config(args, run):
            rows.append(done[trace])
            continue
        note(f"[{i + 1}/{len(args.traces)}] {trace} (live, {run.duration_s:g} s)")
        try:
            sess = live_session(args, trace, run, setup, note)
        except Exception as exc:  # noqa: BLE001 - one failed session must not end the sweep
            row = {"trace": trace, "config": _config(args, run), "error": f"{type(exc).__name__}: {exc}"}
        else:
            row = _row(args, run, trace, sess.summary, sess.events, sess.raw, out, preset, simulate_prediction)
        rows.append(row)
        with res_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    return _report(args, rows, preset)


def _row(args, run: LiveRun, trace: str, real: dict, events: list[dict], raw: dict | None, out: Path,
         preset: SessionPreset, simulate_prediction) -> dict:
    first = (real.get("live") or {}).get("first_number")
    movie = chunked_movie(real["movie"], real.get("content_dir"), run)
    sim, seglog = simulate_prediction(trace, movie, preset=live_preset(run, preset.name, first))
    stem = Path(trace).stem
    with (out / f"{stem}.dashjs.jsonl").open("w") as fh:
        for e in events:
            fh.write(json.dumps(e) + "\n")
    with (out / f"{stem}.sim.jsonl").open("w") as fh:
        for e in seglog:
            fh.write(json.dumps(e) + "\n")
    if raw is not None:
        (out / f"{stem}.raw.json").write_text(json.dumps(raw))
    (out / f"{stem}.side.txt").write_text(side_by_side_live(real, sim))
    return {"trace": trace, "config": _config(args, run), "preset": preset.name, "real": real, "sim": sim,
            **compare_live(real, sim)}


def side_by_side_live(real: dict, sim: dict) -> str:
    """The two sessions' rungs, segment by segment (`*` where they differ), for reading misses."""
    a, b = real["chosen"], sim["chosen"]
    lines = [f"dash.js: {len(a)} segments, latency mean {real['latency_mean_s']:.3f} s, stalls "
             f"{real['rebuffer_count']} ({real['rebuffer_s']:.2f} s); sim: {len(b)} segments, latency mean "
             f"{sim['latency_mean_s']:.3f} s, stalls {sim['rebuffer_count']} ({sim['rebuffer_s']:.2f} s)"]
    for i in range(0, max(len(a), len(b)), 40):
        ra = "".join(str(x) for x in a[i:i + 40])
        rb = "".join(str(x) for x in b[i:i + 40])
        diff = "".join(" " if x == y else "*" for x, y in zip(ra, rb))
        lines += [f"{i:4d} dash.js {ra}", f"{'':4} sim     {rb}", f"{'':12} {diff}"]
    return "\n".join(lines) + "\n"


def _resimulate(args, run: LiveRun, out: Path, simulate_prediction) -> int:
    res_path = out / "agreement.jsonl"
    rows, picked = rows_to_resimulate(res_path, args.traces)
    keep = [rows[i] for i in picked]
    preset = live_preset(run, args.preset)
    for i, r in enumerate(keep):
        if "error" in r:
            continue
        stem = Path(r["trace"]).stem
        raw_path = out / f"{stem}.raw.json"
        raw = json.loads(raw_path.read_text()) if raw_path.is_file() else None
        if raw is not None:
            again = reassemble_live(raw, r["real"])
            real, events = again.summary, again.events
        else:
            real = r["real"]
            events = [json.loads(x) for x in (out / f"{stem}.dashjs.jsonl").read_text().splitlines() if x.strip()]
        keep[i] = _row(args, run, r["trace"], real, events, None, out, preset, simulate_prediction)
        keep[i]["config"] = r.get("config")
        rows[picked[i]] = keep[i]
    rewrite_rows(res_path, rows)     # the rows not named stay as they were
    return _report(args, keep, preset)


def _report(args, rows: list[dict], preset: SessionPreset) -> int:
    good = [r for r in rows if "error" not in r]
    totals = {"sessions": len(rows), "failed": len(rows) - len(good),
              "meeting_all": sum(1 for r in good if r["ok"]),
              "same_rung_ge_80": sum(1 for r in good if r["same_rung"] >= SAME_RUNG_GOAL),
              "latency_within_0_5s": sum(1 for r in good if abs(r["latency_diff_s"]) <= LATENCY_GOAL_S),
              "stall_within_1s": sum(1 for r in good if abs(r["stall_diff_s"]) <= STALL_GOAL_S)}
    if args.json:
        print(json.dumps({"rows": rows, "totals": totals}))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"dash.js live vs simulate --abr dashjs --preset {preset.name} ({args.movie})")
    for col in ("trace", "same rung", "dash.js lat s", "sim lat s", "Δ lat s", "dash.js stall s", "sim stall s",
                "Δ stall s", "dash.js kbit/s", "sim kbit/s", "LL mode", "ok"):
        t.add_column(col, justify="right")
    for r in rows:
        if "error" in r:
            t.add_row(Path(r["trace"]).stem, *["-"] * 10, f"[red]{r['error'][:40]}[/]")
            continue
        re_, si = r["real"], r["sim"]
        t.add_row(Path(r["trace"]).stem, f"{r['same_rung']:.0%}", f"{re_['latency_mean_s']:.2f}",
                  f"{si['latency_mean_s']:.2f}", f"{r['latency_diff_s']:+.2f}", f"{re_['rebuffer_s']:.2f}",
                  f"{si['rebuffer_s']:.2f}", f"{r['stall_diff_s']:+.2f}", f"{re_['avg_bitrate_bps'] / 1e3:.0f}",
                  f"{si['avg_bitrate_bps'] / 1e3:.0f}", str(re_.get("low_latency_mode")),
                  "yes" if r["ok"] else "[red]no[/]")
    Console(width=200).print(t)
    print(json.dumps(totals))
    return 0
