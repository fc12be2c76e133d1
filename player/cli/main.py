"""The `abrlab` command line: a thin shell over the subcommands in `player.cli.commands`.

Each module in `player.cli.commands` defines `register(subparsers)`, adding its parser and
setting `func(args) -> int`. Any `AbrlabError` (bad input, usage, playback, licence...)
becomes one line on stderr and exit status 2, never a traceback; `abrlab` with no
subcommand prints the help and exits 2.

Subcommands load lazily: `abrlab compare` imports the compare module and what it needs, not
the HTTP stack the player and the edge need (aiohttp alone costs about 0.3 s), so a short
sweep is not dominated by imports. `abrlab --help` loads them all.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import player.cli.commands as commands_pkg
from netem.errors import AbrlabError

# Order in `abrlab --help`; modules not listed here are appended alphabetically.
COMMAND_ORDER = [
    "demo", "play", "simulate", "compare", "traces", "abr", "content", "serve", "proxy",
    "mpd", "interop", "fidelity", "crowd", "bench",
]


def command_names() -> list[str]:
    """Every subcommand, in help order (one module each in `player.cli.commands`)."""
    found = {m.name for m in pkgutil.iter_modules(commands_pkg.__path__) if not m.name.startswith("_")}
    return [c for c in COMMAND_ORDER if c in found] + sorted(found - set(COMMAND_ORDER))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with just `only` (when it names one)."""
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
    names = command_names()
    for name in ([only] if only in names else names):
        importlib.import_module(f"{commands_pkg.__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
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
