"""Simulator throughput, as a user meets it: `abrlab compare` end to end, and per policy.

The workload of the issue: the 86 hsdpa-3g traces repeated to N sessions on bbb.json (199
segments, 10 rungs) under `sabre` with BOLA, and RobustMPC under `pensieve` on envivio.json
(Pensieve's video), where the published anchors are measured; beside them, 86 synthetic
Markov traces with 5 s periods (netem.synth). Falls back to bundled synthetic data when
../shared is absent.

- `end_to_end`: `python -m player.cli compare ... --jobs 1 --no-plots` as a subprocess
  (interpreter start, imports, loading traces, simulating, writing and fsyncing
  sessions.csv, statistics), for 1,000 and 5,000 sessions; the marginal cost per session is
  (t5000 − t1000) / 4000. Wall clock and CPU time (user + system of the process and its
  workers), the best of `REPEATS` runs (the machine may be shared), peak RSS.
- `scaling`: a 10,000-session sweep with --jobs 1 and --jobs 2: the speed-up of the whole
  command and of the simulation phase alone (what compare reports as "simulated N sessions
  in X s"), for three single-policy sweeps and for every registered policy at once (10,000
  sessions shared among them, hsdpa-3g, bbb, the default preset: the sweep `compare` is for). Beside each, Amdahl's bound: the
  whole command's speed-up if the simulation phase halved exactly and the rest (interpreter,
  imports, loading, saving, statistics) stayed as it is on one core.
- `one_core`: sessions per second of every policy in-process (run_sweep, traces loaded).
- `against_goals`: the issue's figures beside their goals (marginal cost and 1,000 sessions
  end to end for bola, on the ../shared traces and on the synthetic 5 s-period traces;
  RobustMPC's sessions per second on one core, at the margin of `compare` and in-process;
  both cores against one on 10,000 sessions, the whole command and the simulation alone),
  each with `met`.

Before timing, the package's bytecode is compiled (`compileall`), as pip does when it installs
a package: an editable install run with PYTHONDONTWRITEBYTECODE set would otherwise compile
about 80 modules from source in every command (about 0.1 s), which no installed tool pays.
"""
from __future__ import annotations

import compileall
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import abr
from netem import formats, synth
from player.lab import data
from player.lab.data import bundled_paths
from player.lab.sweep import Sweep, run_sweep

SHARED = data.SHARED
SABRE_POLICIES = ("bola", "throughput", "dynamic")
REPEATS = 3
SIMULATED = re.compile(r"simulated ([\d,]+) sessions in ([\d.]+) s")


def _workload():
    hsdpa = SHARED / "traces" / "hsdpa-3g"
    if hsdpa.is_dir():
        return ([str(p) for p in formats.expand_paths([hsdpa])], str(SHARED / "movies" / "bbb.json"),
                str(SHARED / "movies" / "envivio.json"), "86 hsdpa-3g traces, bbb.json / envivio.json")
    traces, movie = bundled_paths()
    return traces, movie, movie, "bundled synthetic traces and content (../shared absent)"


def synthetic_traces(folder: Path, n: int = 86, period_s: float = 5.0) -> list[str]:
    """`n` Markov traces whose rate changes every `period_s` seconds (Sabre JSON)."""
    out = []
    for seed in range(n):
        path = folder / f"markov5s-{seed:03d}.json"
        formats.save(synth.markov(seed=seed, step_s=period_s, duration_s=900.0, min_rate_bps=0.3e6,
                                  max_rate_bps=6e6), path, "sabre")
        out.append(str(path))
    return out


PACKAGES = ("abr", "netem", "player")


def compile_bytecode() -> None:
    """Write the .pyc of every module of the project (see the module's docstring)."""
    root = Path(__file__).resolve().parents[3]
    for name in PACKAGES:
        compileall.compile_dir(str(root / name), quiet=1)


def run_compare(traces: list[str], movie: str, abr_name: str, preset: str | None, n: int, jobs: int) -> dict:
    """One `abrlab compare` in a subprocess: wall and CPU seconds, peak RSS, simulation phase.
    `abr_name` may list several policies; `preset` None is compare's own default."""
    with tempfile.TemporaryDirectory(prefix="abrlab-bench-") as tmp:
        cmd = [sys.executable, "-m", "player.cli", "compare", "--traces", *traces, "--movie", movie,
               "--abr", abr_name, *(["--preset", preset] if preset else []), "--repeat-to", str(n),
               "--jobs", str(jobs), "--no-plots", "--out", str(Path(tmp) / "out")]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[3])
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"compare failed ({proc.returncode}): {err[-500:]}")
    m = SIMULATED.search(err)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
            "simulate_s": float(m.group(2)) if m else None}


def best_of(traces, movie, abr_name, preset, n, jobs, repeats) -> dict:
    runs = [run_compare(traces, movie, abr_name, preset, n, jobs) for _ in range(repeats)]
    return {k: min(r[k] for r in runs) if runs[0][k] is not None else None for k in runs[0]}


def end_to_end(traces, movie, abr_name, preset, small: int, big: int, repeats: int) -> dict:
    a = best_of(traces, movie, abr_name, preset, small, 1, repeats)
    b = best_of(traces, movie, abr_name, preset, big, 1, repeats)
    extra = big - small
    return {
        f"wall_s_{small}": round(a["wall_s"], 3), f"wall_s_{big}": round(b["wall_s"], 3),
        f"cpu_s_{small}": round(a["cpu_s"], 3), f"cpu_s_{big}": round(b["cpu_s"], 3),
        "marginal_ms_per_session_wall": round((b["wall_s"] - a["wall_s"]) / extra * 1e3, 4),
        "marginal_ms_per_session_cpu": round((b["cpu_s"] - a["cpu_s"]) / extra * 1e3, 4),
        "marginal_sessions_per_s_wall": round(extra / max(b["wall_s"] - a["wall_s"], 1e-9), 1),
        f"peak_rss_mib_{big}": round(b["peak_rss_mib"], 1),
    }


def scaling(traces, movie, abr_name, preset, n: int, repeats: int) -> dict:
    one = best_of(traces, movie, abr_name, preset, n, 1, repeats)
    two = best_of(traces, movie, abr_name, preset, n, 2, repeats)
    out = {"one_core_wall_s": round(one["wall_s"], 3), "two_cores_wall_s": round(two["wall_s"], 3),
           "speedup_end_to_end": round(one["wall_s"] / two["wall_s"], 2)}
    if one["simulate_s"] and two["simulate_s"]:
        out.update({"one_core_simulate_s": one["simulate_s"], "two_cores_simulate_s": two["simulate_s"],
                    "speedup_simulation": round(one["simulate_s"] / two["simulate_s"], 2),
                    "amdahl_bound_end_to_end": round(amdahl_bound(one["wall_s"], one["simulate_s"]), 2)})
    return out


def amdahl_bound(wall_s: float, simulate_s: float, workers: int = 2) -> float:
    """The whole command's speed-up on `workers` cores if only its simulation phase
    (`simulate_s` of `wall_s` on one core) were shared, perfectly."""
    serial = max(0.0, wall_s - simulate_s)
    return wall_s / (serial + simulate_s / workers)


def _sweep_rate(traces, movie, abr_name, preset, n) -> float:
    sweep = Sweep(traces, movie, [abr_name], presets=[preset], repeat_to=n)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows = run_sweep(sweep, Path(tmp), "inprocess")
        dt = time.perf_counter() - t0
    assert len(rows) == n
    return n / dt


def against_goals(out: dict, small: int, big: int, n: int) -> list[dict]:
    """The figures the issue sets goals for, each beside its goal and whether it is met."""
    g = out["goals"]
    rows = []

    def row(figure: str, value, goal, met: bool | None) -> None:
        rows.append({"figure": figure, "value": value, "goal": goal, "met": met})

    for name, e in out["end_to_end"].items():
        if name.startswith("bola"):
            m = e["marginal_ms_per_session_wall"]
            row(f"{name}: marginal ms per session, {small:,} -> {big:,}", m, f"<= {g['marginal_ms_per_session']}",
                m <= g["marginal_ms_per_session"])
            w = e[f"wall_s_{small}"]
            row(f"{name}: {small:,} sessions end to end, s", w, f"<= {g['end_to_end_1000_s']}" if small == 1000 else
                "(goal at 1,000)", w <= g["end_to_end_1000_s"] if small == 1000 else None)
        else:
            r = e["marginal_sessions_per_s_wall"]
            row(f"{name}: sessions/s at the margin of compare", r, f">= {g['robustmpc_sessions_per_s']}",
                r >= g["robustmpc_sessions_per_s"])
    for name, r in out["one_core"].items():
        if name.startswith("robustmpc"):
            row(f"{name}: sessions/s in-process, {out.get('one_core_sessions', 0):,} sessions (run_sweep)", r,
                f">= {g['robustmpc_sessions_per_s']}", r >= g["robustmpc_sessions_per_s"])
    for name, sc in out["scaling"].items():
        bound = f" (Amdahl's bound {sc['amdahl_bound_end_to_end']})" if "amdahl_bound_end_to_end" in sc else ""
        row(f"{name}: --jobs 2 / --jobs 1 on {n:,} sessions, whole command{bound}", sc["speedup_end_to_end"],
            f">= {g['two_cores_speedup_10000']}", sc["speedup_end_to_end"] >= g["two_cores_speedup_10000"])
        if "speedup_simulation" in sc:
            row(f"{name}: --jobs 2 / --jobs 1 on {n:,} sessions, simulation phase", sc["speedup_simulation"],
                f">= {g['two_cores_speedup_10000']}", sc["speedup_simulation"] >= g["two_cores_speedup_10000"])
    return rows


def run(quick: bool = False) -> dict:
    traces, bbb, envivio, src = _workload()
    compile_bytecode()
    small, big = (200, 1000) if quick else (1000, 5000)
    repeats = 1 if quick else REPEATS
    out = {"what": "abrlab compare end to end (subprocess) and sessions per second per policy",
           "workload": src, "repeats": f"best of {repeats} (wall clock and CPU time)",
           "goals": {"marginal_ms_per_session": 0.15, "end_to_end_1000_s": 0.9, "robustmpc_sessions_per_s": 2000,
                     "two_cores_speedup_10000": 1.8}}
    with tempfile.TemporaryDirectory(prefix="abrlab-synth-") as tmp:
        synthetic = synthetic_traces(Path(tmp))
        out["end_to_end"] = {
            "bola (sabre, bbb, hsdpa-3g)": end_to_end(traces, bbb, "bola", "sabre", small, big, repeats),
            "bola (sabre, bbb, 86 synthetic 5 s-period traces)": end_to_end(synthetic, bbb, "bola", "sabre", small,
                                                                            big, repeats),
            "robustmpc (pensieve, envivio, hsdpa-3g)": end_to_end(traces, envivio, "robustmpc", "pensieve", small,
                                                                  big, repeats),
        }
    n = 2000 if quick else 10000
    out["scaling_sessions"] = n
    out["scaling"] = {f"{name} ({preset})": scaling(traces, movie, name, preset, n, 1 if quick else 2)
                      for name, movie, preset in (("bola", bbb, "sabre"), ("dynamic", bbb, "sabre"),
                                                  ("robustmpc", envivio, "pensieve"))}
    every = abr.names()
    per = math.ceil(n / len(every))
    out["scaling"][f"all {len(every)} policies x {per:,} (default preset, bbb)"] = scaling(
        traces, bbb, ",".join(every), None, per, 1)
    per_policy = 200 if quick else 1000
    out["one_core"] = {}
    for name in abr.names():
        movie = envivio if name in ("robustmpc", "mpc", "fastmpc") else bbb
        preset = "pensieve" if name in ("robustmpc", "mpc", "bba") else "sabre" if name in SABRE_POLICIES else "default"
        out["one_core"][f"{name} ({preset}, {Path(movie).stem})"] = round(
            _sweep_rate(traces, movie, name, preset, per_policy), 1)
    out["one_core_sessions"] = per_policy
    out["against_goals"] = against_goals(out, small, big, n)
    out["peak_rss_mib_self"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["anchors"] = {"sabre_s_per_session": "0.04-0.06 (pure Python, in-process)",
                      "pensieve_robustmpc_s_per_session": "about 1 (48 segments)"}
    return out
