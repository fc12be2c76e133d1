"""The CLI as a whole: every subcommand listed, every option documented with its default."""
from __future__ import annotations

import argparse
import subprocess
import sys

from player.cli.main import build_parser, main


def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _subparsers(sub, prefix + (name,))


def test_no_subcommand_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().err
    for cmd in ("demo", "simulate", "compare", "traces", "abr", "content", "serve", "proxy", "mpd", "bench"):
        assert cmd in out


def test_every_option_names_its_default():
    missing = []
    for path, sub in _subparsers(build_parser()):
        for a in sub._actions:
            if not a.option_strings or a.help in (None, argparse.SUPPRESS) or "-h" in a.option_strings:
                continue
            flag = isinstance(a, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._CountAction))
            if flag or a.required:
                continue
            if "default" not in a.help.lower():
                missing.append(f"abrlab {' '.join(path)} {a.option_strings[0]}")
    assert not missing, "options whose help does not name a default: " + ", ".join(missing)


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "player.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "simulate" in r.stdout


def test_a_subcommand_loads_only_its_own_module():
    """`abrlab compare` must not pay for the HTTP stack (aiohttp) or scipy.stats at start-up."""
    code = ("import sys; from player.cli.main import build_parser; build_parser('compare'); "
            "print(sorted(m for m in ('aiohttp', 'scipy.stats', 'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_every_command_has_a_description_and_every_argument_a_help():
    """A `--help` that explains: each (sub)command says what it does, each positional says
    what it wants (issue: `interop check` had no description, `interop agreement`'s TRACE no help)."""
    missing = []
    for path, sub in _subparsers(build_parser()):
        if not (sub.description or "").strip():
            missing.append(f"abrlab {' '.join(path)}: no description")
        for a in sub._actions:
            if isinstance(a, argparse._SubParsersAction) or a.option_strings:
                continue
            if not a.help:
                missing.append(f"abrlab {' '.join(path)} {a.metavar or a.dest}: no help")
    assert not missing, "; ".join(missing)


def test_no_help_text_shows_a_doubled_percent_sign():
    """argparse needs %% in help strings; a description shown raw must not print it doubled."""
    doubled = []
    for path, sub in _subparsers(build_parser()):
        if "%%" in sub.format_help():
            doubled.append(" ".join(path))
    assert not doubled, doubled


def test_abr_list_shows_a_user_policy_summary_whole_and_indents_wrapped_lines(tmp_path):
    """Issue: `abr list` cut a user policy's docstring at its first line and did not indent
    wrapped lines at 80 columns."""
    pol = tmp_path / "pol.py"
    pol.write_text('from abr import Param, Policy\n\n\nclass Long(Policy):\n'
                   '    """First line of the summary that goes on\n    to a second line here.\n\n'
                   '    Details nobody needs in a list."""\n\n'
                   '    PARAMS = (Param("k", 1.0, "s", "a parameter whose documentation is long enough to wrap '
                   'past eighty columns on any terminal that is not wide"),)\n\n'
                   '    def _select(self, obs):\n        return obs.last_rung * 0\n')
    env = {**__import__("os").environ, "COLUMNS": "80"}
    r = subprocess.run([sys.executable, "-m", "player.cli", "abr", "list", f"{pol}:Long"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    text = " ".join(line.strip() for line in lines)
    assert "First line of the summary that goes on to a second line here." in text
    assert "Details nobody needs" not in text
    assert all(len(line) <= 80 for line in lines)
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("k = 1.0")) + 1
    doc = lines[start:lines.index("", start)]
    assert len(doc) >= 2 and all(line.startswith("      ") for line in doc)   # wrapped, and every line indented


def test_fidelity_has_every_peer_and_dashjs_without_its_setup_is_one_line(tmp_path, monkeypatch, capsys):
    """`abrlab fidelity dashjs` is the interop agreement under the fidelity command (issue 14
    item 5): the same options (live included), and a missing peer is one line, exit 2."""
    peers = next(a for a in build_parser("fidelity")._subparsers._group_actions[0].choices["fidelity"]._actions
                 if isinstance(a, argparse._SubParsersAction)).choices
    assert set(peers) == {"sabre", "pensieve", "player", "dashjs"}
    options = {o for a in peers["dashjs"]._actions for o in a.option_strings}
    assert {"--movie", "--out", "--live", "--low-latency", "--resimulate", "--fast-switch"} <= options
    monkeypatch.setenv("ABRLAB_INTEROP_DIR", str(tmp_path / "nothing"))
    rc = main(["fidelity", "dashjs", "--movie", "traces/content/demo-6rung-120s.json", "--out", str(tmp_path / "o"),
               "traces/synthetic/markov-1.json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "make interop" in err[0], err
