"""The lockstep simulator against its floor: what a step costs, what it touches, what memory allows.

    python tests/perf/lockstep_floor.py [--abr bola] [--preset sabre] [--traces DIR] [--movie FILE]

One batch of n sessions advances one segment per step (199 steps on bbb.json). This script
measures, for one policy and preset (default: BOLA under `sabre`, the issue's workload; the
86 hsdpa-3g traces repeated, or bundled synthetic data when ../shared is absent):

- **cost per step** as a + b·n, fitted over batches of 1 to 8,192 sessions (best of 3
  each): a is what a step costs whatever its size (Python and numpy's per-call overhead),
  b what each session adds to it (the arithmetic and memory traffic over the rows);
- **numpy calls per step**, counted by cProfile at n = 256: numpy functions and ndarray
  methods (exact), and Python-level calls of our own code. Operators on arrays (`a + b`,
  `a[i]`, comparisons) are C calls the profiler cannot see; they are counted by tracing our
  code opcode by opcode (scalar operators count too: an upper bound);
- **bytes touched per session-step**: the arrays with a dimension of exactly n reachable
  from the lockstep object in the middle of a batch, split into the state (a few values per
  session, touched every step), the per-segment records (one element written per step)
  and the per-session trace arrays (one cache line read per step);
- **the memory floor**: state bytes read and written once per step over the bandwidth
  numpy reaches copying a 256 MiB array on this machine.

JSON on stdout. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import cProfile
import dis
import json
import pstats
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from netem import content as content_mod, formats  # noqa: E402
from player.core.simulator import SessionSpec, simulate_batch  # noqa: E402
from player.lab.data import SHARED, bundled_paths  # noqa: E402

SIZES = (1, 8, 64, 512, 2048, 8192)
N_PROFILED = 256
N_STATE = 4099          # a batch size no other array of the run has as a dimension
SMALL_DIM = 16          # an array (n, d) or (d, n) with d up to this is per-session state (rungs, half-lives)
CACHE_LINE = 64
PACKAGES = ("abr", "netem", "player")   # our code: traced, and walked for arrays
OPERATORS = frozenset({"BINARY_OP", "COMPARE_OP", "BINARY_SUBSCR", "STORE_SUBSCR", "UNARY_NEGATIVE",
                       "UNARY_INVERT", "CONTAINS_OP"})


def workload(traces_dir: str | None, movie: str | None):
    if traces_dir is None and (SHARED / "traces" / "hsdpa-3g").is_dir():
        traces_dir = str(SHARED / "traces" / "hsdpa-3g")
        movie = movie or str(SHARED / "movies" / "bbb.json")
    if traces_dir is None:
        paths, bundled_movie = bundled_paths()
        return [formats.load(p) for p in paths], content_mod.load(movie or bundled_movie)
    return [formats.load(p) for p in formats.expand_paths([Path(traces_dir)])], content_mod.load(movie)


def specs_for(n: int, traces, movie, abr_name: str, preset: str) -> list[SessionSpec]:
    return [SessionSpec(traces[i % len(traces)], movie, abr_name, preset=preset) for i in range(n)]


def time_batch(specs, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        simulate_batch(specs, keep=())
        best = min(best, time.perf_counter() - t0)
    return best


def count_operators(specs, steps: int) -> float:
    """Operators executed in our code per step (bytecode BINARY_OP, COMPARE_OP, subscripts,
    unary ops), traced opcode by opcode. The operands' types are not seen, so scalar
    arithmetic counts too: an upper bound on the array operators."""
    roots = tuple(str(REPO / d) for d in PACKAGES)
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        if event == "call":
            if not frame.f_code.co_filename.startswith(roots):
                return None
            frame.f_trace_opcodes = True
            return trace
        if event == "opcode" and dis.opname[frame.f_code.co_code[frame.f_lasti]] in OPERATORS:
            count += 1
        return trace

    sys.settrace(trace)
    try:
        simulate_batch(specs, keep=())
    finally:
        sys.settrace(None)
    return count / steps


def profile_calls(specs, steps: int) -> dict:
    prof = cProfile.Profile()
    prof.enable()
    simulate_batch(specs, keep=())
    prof.disable()
    st = pstats.Stats(prof)
    numpy_calls = ours = 0
    for (filename, _, name), (_, ncalls, tottime, _, _) in st.stats.items():  # type: ignore[attr-defined]
        if filename == "~":
            if "numpy" in name or "ufunc" in name:
                numpy_calls += ncalls
        elif "/numpy/" in filename:
            numpy_calls += ncalls
        elif str(REPO) in filename:
            ours += ncalls
    return {"numpy_calls_per_step": round(numpy_calls / steps, 1),
            "python_calls_of_ours_per_step": round(ours / steps, 1)}


def reachable_arrays(root, n: int) -> list[np.ndarray]:
    """Every distinct array with a dimension of exactly n reachable from `root` through
    attributes, dicts, lists and tuples (views counted once, by their base)."""
    found: dict[int, np.ndarray] = {}
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            if n in base.shape or n in obj.shape:
                found[id(base)] = base
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif (hasattr(obj, "__dict__") and not isinstance(obj, type)
              and type(obj).__module__.split(".")[0] in PACKAGES):
            stack.extend(vars(obj).values())
    return list(found.values())


def state_bytes(specs, n: int) -> dict:
    """Bytes per session of the arrays the lockstep holds at its 100th step (found from the
    `self` of the simulator's step frame): state (one or a few values per session, touched
    every step), records (one element per segment, one written per step) and trace arrays."""
    seen: dict[str, float] = {}
    steps = []

    def hook(record) -> None:
        steps.append(1)
        if len(steps) != 100:
            return
        frame = sys._getframe(1)
        while frame is not None and type(frame.f_locals.get("self")).__name__ != "_Batch":
            frame = frame.f_back
        if frame is None:
            raise RuntimeError("the simulator's step frame was not found")
        kinds = {"state": 0, "records": 0, "trace": 0}
        trace_arrays = 0
        for arr in reachable_arrays(frame.f_locals["self"], n):
            if 0 in arr.strides:                     # a scratch row standing for K rows
                continue
            other = [d for d in arr.shape if d != n]
            if not other or max(other) <= SMALL_DIM:
                kinds["state"] += arr.nbytes
            elif arr.shape[0] == steps_total:
                kinds["records"] += arr.nbytes // steps_total     # one element per step
            else:
                kinds["trace"] += arr.nbytes
                trace_arrays += 1
        seen.update({k: v / n for k, v in kinds.items()}, trace_arrays=trace_arrays)

    steps_total = specs[0].content.n_segments
    simulate_batch(specs, on_decision=hook, keep=())
    return {"state_bytes_per_session": round(seen["state"], 1),
            "record_bytes_per_session_step": round(seen["records"], 1),
            "trace_bytes_per_session": round(seen["trace"], 1), "trace_arrays": int(seen["trace_arrays"])}


def copy_bandwidth_bytes_per_s() -> float:
    a = np.ones(32 << 20)          # 256 MiB
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best     # read and written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--abr", default="bola")
    ap.add_argument("--preset", default="sabre")
    ap.add_argument("--traces", default=None, help="a folder of traces (default: ../shared hsdpa-3g)")
    ap.add_argument("--movie", default=None, help="content description (default: ../shared bbb.json)")
    args = ap.parse_args(argv)
    traces, movie = workload(args.traces, args.movie)
    steps = movie.n_segments
    per_step = {n: time_batch(specs_for(n, traces, movie, args.abr, args.preset)) / steps for n in SIZES}
    ns = np.array(SIZES, dtype=float)
    ts = np.array([per_step[n] for n in SIZES])
    b, a = np.polyfit(ns, ts, 1, w=1 / ts)       # relative error weighs the small batches too
    profiled = specs_for(N_PROFILED, traces, movie, args.abr, args.preset)
    calls = profile_calls(profiled, steps)
    operators = count_operators(profiled, steps)
    mem = state_bytes(specs_for(N_STATE, traces, movie, args.abr, args.preset), N_STATE)
    bw = copy_bandwidth_bytes_per_s()
    # the least a step could move per session: its state read and written once, its records
    # written, one cache line of each per-session trace array read
    touched = (2 * mem["state_bytes_per_session"] + mem["record_bytes_per_session_step"]
               + CACHE_LINE * mem["trace_arrays"])
    floor_s = touched / bw
    out = {
        "workload": f"{args.abr} under {args.preset}, {len(traces)} traces, {steps} segments",
        "seconds_per_step": {str(n): round(per_step[n], 7) for n in SIZES},
        "fixed_us_per_step": round(a * 1e6, 1),
        "us_per_session_step": round(b * 1e6, 4),
        "numpy_calls_per_step": calls["numpy_calls_per_step"],
        "operators_per_step_at_most": round(operators, 1),
        "python_calls_of_ours_per_step": calls["python_calls_of_ours_per_step"],
        **mem,
        "bytes_touched_per_session_step_at_least": round(touched, 1),
        "copy_bandwidth_gb_per_s": round(bw / 1e9, 2),
        "memory_floor_us_per_session_step": round(floor_s * 1e6, 4),
        "measured_over_floor": round(b / floor_s, 1),
        "ns_per_element_per_array_call": round(b * 1e9 / (calls["numpy_calls_per_step"] + operators), 2),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
