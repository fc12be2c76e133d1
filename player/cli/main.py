"""The `abrlab` command line: a thin shell that finds subcommands in `player.cli.commands`.

Each module in `player.cli.commands` defines `register(subparsers)`, adding its parser and
setting `func(args) -> int`. Bad input (`InputError`, `ValueError` raised for a user's
file or option) becomes exit status 2 and one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from netem.errors import AbrlabError

# Order in `abrlab --help`; modules not listed here are appended alphabetically.
COMMAND_ORDER = [
    "demo", "play", "simulate", "compare", "traces", "abr", "content", "serve", "proxy",
    "mpd", "interop", "bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="abrlab",
        description=(
            "abrlab: a client-side adaptive-bitrate laboratory. Play a DASH presentation "
            "through a realistic network, swap ABR algorithms and compare them on real "
            "bandwidth traces. Units everywhere: seconds, bits per second, bytes."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import player.cli.commands as pkg

    found = {m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")}
    ordered = [c for c in COMMAND_ORDER if c in found] + sorted(found - set(COMMAND_ORDER))
    for name in ordered:
        module = importlib.import_module(f"player.cli.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except AbrlabError as exc:
        print(f"abrlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
