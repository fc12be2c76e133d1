"""`abrlab bench`: performance figures as JSON, one suite per module in `player.lab.benches`."""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
import time

import player.lab.benches as pkg
from netem.errors import UsageError


def _suites() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure performance (link model, ABR policies, simulator, emulator); JSON out",
        description=(
            "Run benchmark suites and print their figures as JSON. Each suite reports what it "
            "measured, the workload, and the rate. Suites: " + ", ".join(_suites()) + ". "
            "The emulator suite runs real loopback servers for tens of seconds, so it runs only "
            "with --emulator or --suite emulator."
        ),
    )
    p.add_argument("--suite", action="append", default=None,
                   help="suite to run (repeatable; default: all but emulator)")
    p.add_argument("--emulator", action="store_true", help="also run the emulator fidelity suite (slow, ~minutes)")
    p.add_argument("--quick", action="store_true", help="smaller workloads for a smoke run (figures not comparable)")
    p.add_argument("--json", action="store_true", help="print JSON only (default prints JSON too, indented)")
    p.add_argument("--out", default=None, help="also write the JSON to this file (default: none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    suites = args.suite or [s for s in _suites() if s != "emulator"]
    if args.emulator and "emulator" not in suites:
        suites.append("emulator")
    unknown = set(suites) - set(_suites())
    if unknown:
        raise UsageError(f"unknown suite(s) {', '.join(sorted(unknown))}; known: {', '.join(_suites())}")
    report = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "suites": {},
    }
    for name in suites:
        module = importlib.import_module(f"player.lab.benches.{name}")
        print(f"bench: running {name} ...", file=sys.stderr)
        t0 = time.perf_counter()
        report["suites"][name] = module.run(quick=args.quick)
        report["suites"][name]["wall_s"] = round(time.perf_counter() - t0, 3)
    text = json.dumps(report, indent=None if args.json else 2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0
