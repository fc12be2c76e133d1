"""`abrlab interop agreement --resimulate` rewrites only the sessions it is named, and a trace
that names no recorded session is one line and exit 2, the results untouched (before
2026-12-05 the rows not named were dropped from agreement.jsonl, and a mistyped path emptied it)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from player.cli.main import main

MOVIE = "traces/content/demo-6rung-120s.json"
ROWS = [{"trace": "a.json", "error": "recorded failure a"}, {"trace": "b.json", "error": "recorded failure b"}]


def recorded(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "agreement.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return out


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "agreement.jsonl").read_text().splitlines()]


LIVE = ["--live", "--low-latency", "--duration", "10"]


@pytest.mark.parametrize("mode", [[], LIVE], ids=["vod", "live"])
def test_resimulating_one_session_keeps_the_others(tmp_path, capsys, mode):
    out = recorded(tmp_path)
    rc = main(["interop", "agreement", *mode, "--movie", MOVIE, "--out", str(out), "--json", "--resimulate", "a.json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    assert [r["trace"] for r in printed["rows"]] == ["a.json"]       # the report: what was asked for
    assert rows_of(out) == ROWS                                        # the file: every session still there


@pytest.mark.parametrize("mode", [[], LIVE], ids=["vod", "live"])
def test_a_trace_that_names_no_session_is_one_line_and_changes_nothing(tmp_path, capsys, mode):
    out = recorded(tmp_path)
    before = (out / "agreement.jsonl").read_bytes()
    rc = main(["interop", "agreement", *mode, "--movie", MOVIE, "--out", str(out), "--resimulate", "traces/a.json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "traces/a.json" in err[0] and "recorded: a.json, b.json" in err[0]
    assert (out / "agreement.jsonl").read_bytes() == before
