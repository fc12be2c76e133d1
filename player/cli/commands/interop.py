"""`abrlab interop`: real players through the emulator (dash.js in headless Chromium).

    abrlab interop check
    abrlab interop dashjs --trace F --movie M [--encode-cache DIR] [--max-duration S] [--json]
    abrlab interop agreement --movie M --max-duration S --out DIR TRACE...
    abrlab interop dashjs|agreement --live [--low-latency] --duration S ...   (player/cli/interop/live_commands.py)

`dashjs` prints JSON lines (events, then the summary with `abrlab simulate --json`'s
fields) with --json; `agreement` plays every trace in dash.js and in the simulator
(`--abr dashjs --preset dashjs` on the same encoded content) and compares them.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import sys
from pathlib import Path

from abr.algorithms.dashjs import RULES
from netem import content, formats
from netem.errors import UsageError
from player.cli.interop import live_commands as interop_live
from player.cli.commands.simulate import print_summary
from player.cli.interop.dashjs import (InteropUnavailable, agreement_rows, chromium_version, find_setup, reassemble,
                                       rewrite_rows, rows_to_resimulate, run_session)
from player.core.presets import SessionPreset, get as get_preset, names as presets_names
from player.core.simulator import SessionSpec, simulate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interop", help="real players through the emulated network: dash.js in headless Chromium",
        description="Play encoded content in dash.js 5 (headless Chromium) through abrlab's shaped edge and "
                    "report the session like `abrlab simulate --json`. Needs `make interop` once.")
    isub = p.add_subparsers(dest="interop_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])

    c = isub.add_parser("check", help="say whether Chromium, dash.js and the driver are installed",
                        description="Look for what `abrlab interop dashjs` needs (Chromium, the dashjs npm package "
                                    "5.x and the playwright driver, as `make interop` installs them into .interop/) "
                                    "and print where each is, as JSON; exit 2 with what is missing and how to get it.")
    c.set_defaults(func=run_check)

    d = isub.add_parser("dashjs", help="one dash.js session over a trace",
                        description="Encode (or reuse) content for MOVIE, serve it through the edge shaped by "
                                    "TRACE, play it in dash.js in headless Chromium, and print events and a "
                                    "summary. Exit status 1 when the watchdog fails the run.")
    d.add_argument("--trace", required=True, help="trace file (Mahimahi, Pensieve cooked, Sabre JSON or CSV)")
    add_session_args(d)
    d.add_argument("--json", action="store_true", help="print JSON lines: events, then the summary object")
    d.add_argument("--events", metavar="FILE.jsonl", default=None, help="also write the events to this file (default: none)")
    d.set_defaults(func=run_dashjs)

    a = isub.add_parser("agreement", help="dash.js vs `abrlab simulate --abr dashjs --preset dashjs` on traces",
                        description="Play every TRACE in dash.js and simulate it with the dashjs policy and "
                                    "preset on the same encoded content; report per trace the share of "
                                    "segments at the same rung, the mean-bitrate difference and the stall-time "
                                    "difference. Results go to OUT/agreement.jsonl as they come (a rerun skips "
                                    "traces already there) with each session's events in OUT/.")
    add_agreement_args(a)
    a.set_defaults(func=run_agreement)


def add_session_args(q: argparse.ArgumentParser) -> None:
    """The options of a dash.js session (content, encoding, dash.js settings, live), shared by
    `interop dashjs`, `interop agreement` and `fidelity dashjs`."""
    q.add_argument("--movie", required=True,
                   help="content description whose ladder and segment durations are encoded "
                        "(Sabre movie JSON, our JSON/TOML, or a Pensieve video_size_N folder)")
    q.add_argument("--encode-cache", metavar="DIR", default=None,
                   help="where encoded content is kept, keyed by movie, ladder and duration "
                        "(default: ~/.cache/abrlab/interop)")
    q.add_argument("--max-duration", metavar="S", type=float, default=None,
                   help="encode only the first S seconds of the movie (default: all of it)")
    q.add_argument("--max-height", metavar="PX", type=int, default=360,
                   help="encode rungs taller than this scaled down, keeping bitrates (default 360)")
    q.add_argument("--time-scale", metavar="K", type=float, default=1.0,
                   help="replay the trace K times faster (experimental; default 1, the only "
                        "setting agreement figures use)")
    q.add_argument("--timeout", metavar="S", type=float, default=None,
                   help="give up on a session after S wall seconds (default 3 × duration + 120)")
    q.add_argument("--fast-switch", choices=("default", "on", "off"), default="default",
                   help="dash.js streaming.buffer.fastSwitchEnabled: default (dash.js's own: on for VoD; "
                        "an up-switch re-fetches buffered segments from the playhead on), on, or off")
    q.add_argument("--abandonment", choices=("default", "on", "off"), default="default",
                   help="dash.js's AbandonRequestsRule: default (active), on, or off")
    q.add_argument("--init", choices=("shaped", "free"), default="shaped",
                   help="init segments through the shaped link with the trace's latency (shaped, default) "
                        "or served at once (free: the prediction leaves the dashjs preset's init requests out)")
    interop_live.add_live_args(q)


def add_agreement_args(a: argparse.ArgumentParser) -> None:
    """The options of `interop agreement` (and of `fidelity dashjs`, the same check): traces,
    a session's options, where results go and the prediction's preset."""
    a.add_argument("traces", nargs="+", metavar="TRACE",
                   help="bandwidth traces to play dash.js and the simulator on (any format abrlab reads)")
    add_session_args(a)
    a.add_argument("--out", required=True, metavar="DIR", help="directory for results and event logs")
    a.add_argument("--json", action="store_true", help="print one JSON object with all rows and totals")
    a.add_argument("--preset", default=None, choices=[n for n in presets_names() if n.startswith("dashjs")],
                   help="the simulator's preset for the prediction (default: dashjs, or dashjs-no-fast-switch for "
                        "sessions played with --fast-switch off)")
    a.add_argument("--resimulate", action="store_true",
                   help="play nothing: redo the simulator's side of the sessions already in OUT (after a change "
                        "to the policy or the preset), and dash.js's side from what was recorded (OUT/*.raw.json), "
                        "and rewrite the comparison")


def _setup():
    try:
        return find_setup()
    except InteropUnavailable as exc:
        raise UsageError(str(exc)) from None


def run_check(args: argparse.Namespace) -> int:
    s = _setup()
    print(json.dumps({"chromium": str(s.chromium), "chromium_version": chromium_version(s),
                      "dashjs": str(s.dashjs_js), "dashjs_version": s.dashjs_version,
                      "driver": "python playwright" + (f" ({s.python_dir})" if s.python_dir else "")}))
    return 0


def _note(msg: str) -> None:
    print(f"interop: {msg}", file=sys.stderr, flush=True)


def _session(args: argparse.Namespace, trace: str, setup):
    return asyncio.run(run_session(trace, args.movie, cache_dir=args.encode_cache, max_duration_s=args.max_duration,
                                   time_scale=args.time_scale, max_height=args.max_height, timeout_s=args.timeout,
                                   progress=_note, setup=setup,
                                   fast_switch=None if args.fast_switch == "default" else args.fast_switch == "on",
                                   abandonment=None if args.abandonment == "default" else args.abandonment == "on",
                                   free_init=args.init == "free"))


def run_dashjs(args: argparse.Namespace) -> int:
    live = interop_live.live_run(args)
    setup = _setup()
    if live is not None:
        out = interop_live.live_session(args, args.trace, live, setup, _note)
        _write_events(args, out)
        if args.json:
            print(json.dumps(out.summary))
        else:
            interop_live.print_live(out.summary)
            print(f"prediction: abrlab interop agreement --live{' --low-latency' if live.low_latency else ''} "
                  f"--duration {live.duration_s:g}"
                  + (f" --chunk-duration {out.summary['live']['chunk_s']:g} --target-latency "
                     f"{out.summary['live']['target_latency_s']:g}" if live.low_latency else "")
                  + f" --movie {args.movie} --out DIR {args.trace} (plays it again and simulates it)")
        if not out.summary["ok"]:
            _note("watchdog failed the run: " + "; ".join(out.summary["problems"]))
            return 1
        return 0
    out = _session(args, args.trace, setup)
    _write_events(args, out)
    if args.json:
        print(json.dumps(out.summary))
    else:
        print_summary(out.summary)
        w = out.summary["watchdog"]
        print(f"{out.summary['player']} in {out.summary['browser']}; frames decoded {w['frames_decoded']}, "
              f"dropped {w['frames_dropped']}, width {w['video_width']}; chosen {out.summary['chosen']}")
        print(f"prediction: abrlab simulate --trace {args.trace} --movie {out.summary['movie']} "
              f"--abr dashjs --preset {prediction_preset(args.fast_switch).name} --json")
    if not out.summary["ok"]:
        _note("watchdog failed the run: " + "; ".join(out.summary["problems"]))
        return 1
    return 0


# -- agreement ---------------------------------------------------------------------------------------
def prediction_preset(fast_switch: str = "default", init: str = "shaped", name: str | None = None) -> SessionPreset:
    """The preset that predicts a dash.js session: `dashjs` (dash.js's defaults, fast
    switching on), `dashjs-no-fast-switch` for a session with `--fast-switch off`, or the
    preset `name`. With `init="free"` (the edge served init segments at once) the preset's
    init-segment requests are left out."""
    p = get_preset(name or ("dashjs-no-fast-switch" if fast_switch == "off" else "dashjs"))
    return dataclasses.replace(p, init_bytes=0) if init == "free" else p


def simulate_prediction(trace: str, content_json: str, init: str = "shaped",
                        preset: SessionPreset | None = None) -> tuple[dict, list[dict]]:
    """`abrlab simulate --trace T --movie C --abr dashjs --preset dashjs --json` in process
    (`preset`: another prediction preset, see `prediction_preset`). Returns the summary and
    the request log: every media request in order, new segments and re-fetched ones
    (`refetch`, and whether that version `played`), each with what the policy computed for
    the decision that made it (rule, estimate, BOLA mode, placeholder, the buffer it saw)."""
    infos: list[dict] = []

    def record(d) -> None:  # one session: row 0
        if d.observation is None:
            return
        li = d.inputs
        infos.append({"rule": RULES[int(li["rule"][0])], "throughput_bps": float(li["throughput_bps"][0]),
                      "bola": bool(li["bola"][0]), "placeholder_s": float(li["placeholder_s"][0]),
                      "buffer_at_decision_s": float(d.observation.buffer_s[0])})

    p = preset if preset is not None else prediction_preset(init=init)
    spec = SessionSpec(formats.load(trace), content.load(content_json), "dashjs", {}, None, p,
                       label={"trace": trace, "movie": content_json})
    res = simulate([spec], on_decision=record)[0]
    requests = [{**row, "sent_s": row["request_s"] + row["init_s"], "refetch": False, "played": True}
                for row in res.segment_log()]
    for f in res.refetches or []:
        requests.append({"segment": f["segment"], "request_s": f["request_s"], "wait_s": 0.0, "rung": f["rung"],
                         "bitrate_bps": float(res.spec.content.bitrates_bps[f["rung"]]),
                         "size_bytes": f["size_bytes"], "init_s": f["sent_s"] - f["request_s"],
                         "latency_s": f["latency_s"], "download_s": f["download_s"], "rebuffer_s": 0.0,
                         "buffer_s": None, "sent_s": f["sent_s"], "refetch": True, "played": f["played"]})
    requests.sort(key=lambda r: r["request_s"])   # one decision per request, in the same order
    for row, info in zip(requests, infos):
        row.update(info)
    return res.summary(), requests


def _pair_requests(events: list[dict], requests: list[dict]) -> dict[int, dict]:
    """For each dash.js decision (its index in `events`), the simulator's request it matches:
    the n-th request for the same segment on both sides (a request made again after an
    abandonment matches the one it replaces)."""
    by_segment: dict[int, list[dict]] = {}
    for r in requests:
        by_segment.setdefault(r["segment"], []).append(r)
    seen: dict[int, int] = {}
    out: dict[int, dict] = {}
    for i, e in enumerate(events):
        if e["event"] != "decision":
            continue
        k = e["segment"]
        if e.get("rule") != "AbandonRequestsRule" or k not in seen:
            seen[k] = seen.get(k, -1) + 1
        mine = by_segment.get(k, [])
        if seen[k] < len(mine):
            out[i] = mine[seen[k]]
    return out


def side_by_side(events: list[dict], requests: list[dict]) -> str:
    """dash.js's decisions and downloads beside the simulator's, one line per dash.js request
    (`R` marks a re-fetch of a buffered segment, fast switching); both sides' t_s is when the
    media request went out (after any init-segment request)."""
    lines = [f"{'':3}{'dash.js: t_s':>12} {'seg':>3} {'rung':>4} {'rule':<22} {'buffer':>6} {'est kbit/s':>10} "
             f"{'dl s':>6} | {'sim: t_s':>8} {'rung':>4} {'rule':<22} {'buffer':>6} {'est kbit/s':>10} {'dl s':>6} "
             f"{'bola':>4} {'ph s':>5}"]
    # each decision's outcome: the next download or abandonment of that segment at that rung
    outcome: dict[int, dict] = {}
    refetched: dict[int, bool] = {}     # a request for a segment that had arrived already
    arrived: set[int] = set()
    pending: dict[tuple, list[int]] = {}
    for i, e in enumerate(events):
        if e["event"] == "decision":
            pending.setdefault((e["segment"], e["rung"]), []).append(i)
            refetched[i] = e["segment"] in arrived
        elif e["event"] in ("download", "abandon"):
            key = (e["segment"], e.get("rung", e.get("from_rung")))
            if e["event"] == "download":
                arrived.add(e["segment"])
            if pending.get(key):
                j = pending[key].pop(0)
                outcome[j] = {"dl": e["t_s"] - events[j]["t_s"], "abandoned": e["event"] == "abandon"}
    paired = _pair_requests(events, requests)

    def f(x, fmt):
        return format(x, fmt) if isinstance(x, (int, float)) and x == x else "-".rjust(len(format(0, fmt)))
    for i, e in enumerate(events):
        if e["event"] != "decision":
            continue
        k, r = e["segment"], e["rung"]
        o = e.get("observation") or {}
        d_s = (outcome.get(i) or {}).get("dl")
        s = paired.get(i, {})
        mark = ("  " if s.get("rung") == r else "**") + ("R" if refetched.get(i) else " ")
        tp = o.get("throughput_bps")
        lines.append(
            f"{mark}{e['t_s']:12.2f} {k:3d} {r:4d} {str(e.get('rule'))[:22]:<22} {f(o.get('buffer_s'), '6.2f')} "
            f"{f(tp / 1e3 if tp else None, '10.0f')} {f(d_s, '6.2f')} | "
            + (f"{s['sent_s']:8.2f} {s['rung']:4d} {s.get('rule', '')[:22]:<22} "
               f"{f(s.get('buffer_at_decision_s'), '6.2f')} {f(s.get('throughput_bps', float('nan')) / 1e3, '10.0f')} "
               f"{s['download_s']:6.2f} {('yes' if s.get('bola') else 'no'):>4} {f(s.get('placeholder_s'), '5.2f')}"
               + (" R" if s.get("refetch") else "")
               if s else ""))
    stalls_dj = [(round(e["t_s"] - e.get("stall_s", 0), 2), e.get("stall_s"))
                 for e in events if e["event"] == "stall_end"]
    stalls_sim = [(round(x["request_s"], 2), round(x["rebuffer_s"], 3)) for x in requests if x["rebuffer_s"] > 0]
    lines.append(f"stalls dash.js (start, s): {stalls_dj}")
    lines.append(f"stalls sim (during the request at, s): {stalls_sim}")
    refetch_dj = sum(1 for e in events if e["event"] == "download" and e.get("refetch"))
    lines.append(f"re-fetches: dash.js {refetch_dj}, sim {sum(1 for x in requests if x['refetch'])}")
    return "\n".join(lines) + "\n"


def compare(real: dict, sim: dict) -> dict:
    """The agreement figures of one session."""
    a, b = real["chosen"], sim["chosen"]
    n = min(len(a), len(b))
    same = sum(1 for x, y in zip(a[:n], b[:n]) if x == y) / max(len(b), 1)
    rb, sb = real["avg_bitrate_bps"], sim["avg_bitrate_bps"]
    return {"same_rung": same, "bitrate_diff": (rb - sb) / sb if sb else math.nan,
            "stall_diff_s": real["rebuffer_s"] - sim["rebuffer_s"],
            "ok": same >= 0.8 and abs((rb - sb) / sb) <= 0.05 and abs(real["rebuffer_s"] - sim["rebuffer_s"]) <= 1.0
            and bool(real.get("ok", True))}


def _config(args: argparse.Namespace) -> dict:
    return {"movie": str(args.movie), "max_duration": args.max_duration, "max_height": args.max_height,
            "time_scale": args.time_scale, "fast_switch": args.fast_switch, "abandonment": args.abandonment,
            "init": args.init}


def _write_events(args: argparse.Namespace, out) -> None:
    """The session's events to --events FILE, and as JSON lines on stdout with --json."""
    if args.events:
        with open(args.events, "w") as fh:
            for e in out.events:
                fh.write(json.dumps(e) + "\n")
    if args.json:
        for e in out.events:
            print(json.dumps(e))


def run_agreement(args: argparse.Namespace) -> int:
    live = interop_live.live_run(args)
    if live is not None:
        return interop_live.run_agreement_live(args, live, _setup, _note, simulate_prediction)
    if args.preset == "dashjs-live":
        raise UsageError("--preset dashjs-live predicts live sessions: give --live")
    if args.resimulate:
        return _resimulate(args)
    setup = _setup()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "agreement.jsonl"
    done = agreement_rows(res_path)
    rows = []
    for i, trace in enumerate(args.traces):
        if trace in done and done[trace].get("config") == _config(args):
            rows.append(done[trace])
            continue
        _note(f"[{i + 1}/{len(args.traces)}] {trace}")
        try:
            sess = _session(args, trace, setup)
        except Exception as exc:  # noqa: BLE001 - one failed session must not end the sweep
            row = {"trace": trace, "max_duration": args.max_duration, "config": _config(args),
                   "error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            with res_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            continue
        sim, seglog = simulate_prediction(trace, sess.summary["movie"], args.init,
                                          prediction_preset(args.fast_switch, args.init, args.preset))
        stem = Path(trace).stem
        with (out / f"{stem}.dashjs.jsonl").open("w") as fh:
            for e in sess.events:
                fh.write(json.dumps(e) + "\n")
        with (out / f"{stem}.sim.jsonl").open("w") as fh:
            for e in seglog:
                fh.write(json.dumps(e) + "\n")
        (out / f"{stem}.side.txt").write_text(side_by_side(sess.events, seglog))
        (out / f"{stem}.raw.json").write_text(json.dumps(sess.raw))
        row = {"trace": trace, "max_duration": args.max_duration, "config": _config(args),
               "real": sess.summary, "sim": sim,
               **compare(sess.summary, sim)}
        rows.append(row)
        with res_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
    return _report(args, rows)


def _resimulate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    res_path = out / "agreement.jsonl"
    rows, picked = rows_to_resimulate(res_path, args.traces)
    keep = [rows[i] for i in picked]
    for r in keep:
        if "error" in r:
            continue
        stem = Path(r["trace"]).stem
        raw_path = out / f"{stem}.raw.json"
        if raw_path.is_file():  # the dash.js side too, by today's rules, from what was recorded
            again = reassemble(json.loads(raw_path.read_text()), r["real"])
            r["real"] = again.summary
            with (out / f"{stem}.dashjs.jsonl").open("w") as fh:
                for e in again.events:
                    fh.write(json.dumps(e) + "\n")
        mode = _init_mode(r)
        fast = (r.get("config") or {}).get("fast_switch", "default")
        sim, seglog = simulate_prediction(r["trace"], r["real"]["movie"], mode,
                                          prediction_preset(fast, mode, args.preset))
        r["sim"] = sim
        r.update(compare(r["real"], sim))
        with (out / f"{stem}.sim.jsonl").open("w") as fh:
            for e in seglog:
                fh.write(json.dumps(e) + "\n")
        ev_path = out / f"{stem}.dashjs.jsonl"
        if ev_path.is_file():
            events = [json.loads(line) for line in ev_path.read_text().splitlines() if line.strip()]
            (out / f"{stem}.side.txt").write_text(side_by_side(events, seglog))
    rewrite_rows(res_path, rows)     # the rows not named stay as they were
    return _report(args, keep)


def _init_mode(row: dict) -> str:
    """How the recorded session's edge served init segments: "shaped" (the default, and the only
    mode before the option existed) or "free"."""
    mode = (row.get("config") or {}).get("init")
    if mode is None:
        mode = ((row.get("real") or {}).get("dashjs_settings") or {}).get("init_segments")
    return "free" if mode == "free" else "shaped"


def _report(args: argparse.Namespace, rows: list[dict]) -> int:
    good = [r for r in rows if "error" not in r]
    totals = {"sessions": len(rows), "failed": len(rows) - len(good),
              "meeting_all": sum(1 for r in good if r["ok"]),
              "same_rung_mean": float(sum(r["same_rung"] for r in good) / len(good)) if good else math.nan,
              "same_rung_ge_80": sum(1 for r in good if r["same_rung"] >= 0.8),
              "bitrate_within_5pct": sum(1 for r in good if abs(r["bitrate_diff"]) <= 0.05),
              "stall_within_1s": sum(1 for r in good if abs(r["stall_diff_s"]) <= 1.0)}
    if args.json:
        print(json.dumps({"rows": rows, "totals": totals}))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"dash.js vs simulate --abr dashjs --preset {args.preset or 'dashjs'} "
                    f"({args.movie}, {args.max_duration} s)")
    for col in ("trace", "same rung", "dash.js Mbit/s", "sim Mbit/s", "Δ bitrate", "dash.js stall s", "sim stall s",
                "Δ stall s", "re-fetches", "ok"):
        t.add_column(col, justify="right")
    for r in rows:
        if "error" in r:
            t.add_row(Path(r["trace"]).stem, "-", "-", "-", "-", "-", "-", "-", "-", f"[red]{r['error'][:40]}[/]")
            continue
        t.add_row(Path(r["trace"]).stem, f"{r['same_rung']:.0%}", f"{r['real']['avg_bitrate_bps'] / 1e6:.3f}",
                  f"{r['sim']['avg_bitrate_bps'] / 1e6:.3f}", f"{r['bitrate_diff']:+.1%}",
                  f"{r['real']['rebuffer_s']:.2f}", f"{r['sim']['rebuffer_s']:.2f}", f"{r['stall_diff_s']:+.2f}",
                  f"{r['real'].get('refetches', 0)} / {r['sim'].get('refetches', 0)}",
                  "yes" if r["ok"] else "[red]no[/]")
    Console(width=200).print(t)
    print(json.dumps(totals))
    return 0
