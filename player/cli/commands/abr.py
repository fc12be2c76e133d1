"""`abrlab abr list [--json]`: every ABR policy with its parameters, defaults and units."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from rich.console import Console
from rich.table import Table

import abr
from netem.errors import UsageError
from player.core.presets import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "abr",
        help="list the ABR policies and their parameters",
        description=(
            "ABR policies: the built-ins, installed plug-ins (entry-point group "
            "abrlab.policies) and, by path, your own file (path/to/file.py:ClassName). "
            "Units: seconds, bits per second, bytes."
        ),
    )
    asub = p.add_subparsers(dest="abr_command", metavar="ACTION")
    lp = asub.add_parser("list", help="every policy with its parameters, defaults and units",
                         description="List every policy (or the ones named) with its "
                         "parameters, defaults, units and documentation.")
    lp.add_argument("names", nargs="*", metavar="POLICY",
                    help="only these policies (names or path.py:Class); default: all")
    lp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lp.set_defaults(func=run_list)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def preset_aliases(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Policy names that mean another policy under a preset (`SessionPreset.abr_aliases`), with
    the preset's defaults for it: e.g. under `--preset sabre`, `bola` is Sabre's `sabre-bola`.
    Only the aliases of the policies in `names` (by either name), when given."""
    out = []
    for preset in PRESETS.values():
        for name, real in preset.abr_aliases.items():
            if names and name not in names and real not in names:
                continue
            defaults = {**preset.abr_defaults.get(real, {}), **preset.abr_defaults.get(name, {})}
            out.append({"preset": preset.name, "name": name, "policy": real,
                        "defaults": {k: _jsonable(v) for k, v in defaults.items()}})
    return out


def alias_line(a: dict[str, Any]) -> str:
    ps = ", ".join(f"{k}={v}" for k, v in a["defaults"].items())
    return f"--preset {a['preset']}: {a['name']} means {a['policy']}" + (f" ({ps})" if ps else "")


def first_paragraph(doc: str | None) -> str:
    """A docstring's first paragraph as one line (a user's policy often wraps its summary
    over several lines; cutting at the first line loses half a sentence)."""
    lines = []
    for line in (doc or "").strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def describe(spec: str) -> dict[str, Any]:
    """One policy as a plain dict: name, summary, source, parameters."""
    cls = abr.policy_class(spec)
    module = sys.modules.get(cls.__module__)
    return {
        "name": spec if spec not in abr.names() else cls.name,
        # a policy class without a docstring (as in examples/) is described by its module's
        "summary": first_paragraph(cls.__doc__) or (first_paragraph(module.__doc__) if module else ""),
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "source": first_paragraph(module.__doc__) if module else "",
        "params": [{"name": p.name, "default": _jsonable(p.default), "unit": p.unit,
                    "doc": p.doc} for p in cls.PARAMS],
    }


def run_list(args: argparse.Namespace) -> int:
    names = args.names or abr.names()
    entries = []
    for name in names:
        try:
            entries.append(describe(name))
        except ValueError as exc:
            if args.names:
                raise UsageError(str(exc)) from None
            entries.append({"name": name, "error": str(exc), "params": []})
    aliases = preset_aliases(args.names or None)
    if args.json:
        print(json.dumps({"policies": entries, "aliases": aliases}, indent=2))
        return 0
    console = Console()
    if console.width < 110:  # narrow terminal: one block per policy, wrapped lines indented
        width = max(40, console.width)

        def para(text: str, indent: int, style: str | None = None) -> None:
            console.print(textwrap.fill(text, width, initial_indent=" " * indent, subsequent_indent=" " * indent),
                          style=style, markup=False, highlight=False)

        for e in entries:
            console.print(e["name"], style="bold cyan", markup=False, highlight=False)
            if e.get("summary"):
                para(e["summary"], 2)
            if e.get("error"):
                para(e["error"], 2, "red")
            for p in e["params"]:
                para(f"{p['name']} = {p['default']} [{p['unit']}]", 2, "green")
                para(p["doc"], 6)
            console.print()
        for a in aliases:
            para(alias_line(a), 0)
        return 0
    table = Table(title="ABR policies — abr.get(name, **params); units: s, bit/s, bytes")
    table.add_column("policy", style="bold cyan", no_wrap=True)
    table.add_column("parameter", style="green", no_wrap=True)
    table.add_column("default", justify="right", no_wrap=True)
    table.add_column("unit", max_width=14)
    table.add_column("meaning", ratio=1)
    for e in entries:
        if e.get("error"):
            table.add_row(e["name"], "", "", "", f"[red]{e['error']}[/red]", end_section=True)
            continue
        params = e["params"] or [None]
        for i, p in enumerate(params):
            first = e["name"] if i == 0 else ""
            last = i == len(params) - 1
            if p is None:
                table.add_row(first, "—", "", "", e.get("summary", ""), end_section=True)
            else:
                table.add_row(first, p["name"], str(p["default"]), p["unit"], p["doc"],
                              end_section=last)
    console.print(table)
    if aliases:
        console.print("Under a preset, some names mean another policy:")
        for a in aliases:
            console.print("  " + alias_line(a), markup=False)
    return 0
