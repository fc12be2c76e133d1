"""`abrlab traces`: info, convert, synth, and bad input as exit status 2 with one stderr line."""
from __future__ import annotations

import argparse
import errno
import json
from pathlib import Path

import pytest

from netem import formats
from player.cli.main import build_parser, main


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# -- info ---------------------------------------------------------------------------------

def test_info_json_one_object_per_file(tmp_path, capsys):
    write(tmp_path, "a.down", "0\n500\n1000\n")
    write(tmp_path, "b.csv", "time_s,rate_bps,latency_s\n0,2e6,0.05\n1,4e6,0.05\n")
    rc, out, err = run(capsys, "traces", "info", tmp_path, "--json")
    assert rc == 0 and err == ""
    rows = json.loads(out)
    assert [Path(r["path"]).name for r in rows] == ["a.down", "b.csv"]
    for key in ("path", "format", "duration_s", "mean_rate_bps", "p10_rate_bps", "p50_rate_bps", "p90_rate_bps"):
        assert all(key in r for r in rows)
    assert rows[0]["format"] == "mahimahi" and rows[0]["mean_rate_bps"] == 3 * 12000
    assert rows[1]["mean_rate_bps"] == 3e6 and rows[1]["mean_latency_s"] == 0.05


def test_info_table(tmp_path, capsys):
    p = write(tmp_path, "x.json", '[{"duration_ms": 2000, "bandwidth_kbps": 1500, "latency_ms": 30}]')
    rc, out, _ = run(capsys, "traces", "info", p)
    assert rc == 0
    assert "x.json" in out and "sabre" in out and "1.50" in out and "30" in out and "Mbit/s" in out


def test_info_on_shared_traces(shared_dir, capsys):
    rc, out, _ = run(capsys, "traces", "info", shared_dir / "traces" / "mahimahi-cellular", "--json")
    assert rc == 0
    assert {r["format"] for r in json.loads(out)} == {"mahimahi"}


# -- convert ------------------------------------------------------------------------------

def test_convert_infers_format_from_extension(tmp_path, capsys):
    src = write(tmp_path, "t.cooked", "0 1.0\n1 2.0\n2 3.0\n")
    rc, out, _ = run(capsys, "traces", "convert", src, tmp_path / "t.json")
    assert rc == 0 and "sabre" in out
    doc = json.loads((tmp_path / "t.json").read_text())
    # a cooked line's rate covers the second before its time: 2 Mbit/s over (0, 1], 3 over (1, 2]
    assert [e["bandwidth_kbps"] for e in doc] == [2000, 3000]
    rc, _, _ = run(capsys, "traces", "convert", tmp_path / "t.json", tmp_path / "t.out", "--to", "csv")
    assert rc == 0
    back = formats.load(tmp_path / "t.out")
    assert back.format == "csv" and back.mean_rate_bps == 2.5e6


def test_convert_to_mahimahi_and_back(tmp_path, capsys):
    src = write(tmp_path, "s.csv", "0,1.2e6\n5,2.4e6\n")
    assert run(capsys, "traces", "convert", src, tmp_path / "s.down")[0] == 0
    tr = formats.load(tmp_path / "s.down")
    assert tr.duration_s == 10.0 and tr.capacity_bits == pytest.approx(18e6, abs=12000)


# -- synth --------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, fmt", [
    (["constant", "--rate", "2M", "--duration", "10"], "csv"),
    (["steps", "--rates", "4M,500k,4M", "--step", "5"], "sabre"),
    (["outages", "--period", "10", "--outage", "3", "--duration", "60"], "mahimahi"),
    (["markov", "--seed", "3", "--duration", "120", "--latency", "0.04"], "pensieve"),
])
def test_synth_each_kind(tmp_path, capsys, argv, fmt):
    out = tmp_path / "synth.trace"
    rc, text, err = run(capsys, "traces", "synth", argv[0], out, *argv[1:], "--to", fmt)
    assert rc == 0, err
    tr = formats.load(out)
    assert tr.format == fmt and tr.capacity_bits > 0 and "wrote" in text


def test_synth_values_and_determinism(tmp_path, capsys):
    run(capsys, "traces", "synth", "constant", tmp_path / "c.csv", "--rate", "2.5M", "--duration", "8")
    c = formats.load(tmp_path / "c.csv")
    assert c.mean_rate_bps == 2.5e6 and c.duration_s == 8.0
    for name, seed in (("a.csv", "9"), ("b.csv", "9"), ("c2.csv", "10")):
        run(capsys, "traces", "synth", "markov", tmp_path / name, "--seed", seed)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c2.csv").read_bytes()


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_names_its_unit_and_default():
    traces = dict(_subparsers(build_parser()))["traces"]
    parsers = dict(_subparsers(traces))
    parsers.update({f"synth {k}": v for k, v in _subparsers(parsers["synth"])})
    units = ("seconds", "bits per second", "one of", "integer", "fraction", "probability", "number of", "JSON")
    for name, parser in parsers.items():
        for action in parser._actions:
            if not action.option_strings or action.dest == "help":
                continue
            text = action.help or ""
            assert "default" in text, (name, action.dest)
            assert any(u in text for u in units), (name, action.dest, text)


def test_rate_suffixes():
    from player.cli.commands.traces import bps

    assert bps("3M") == 3e6 and bps("250k") == 250e3 and bps("1.5G") == 1.5e9 and bps("800bps") == 800
    with pytest.raises(argparse.ArgumentTypeError):
        bps("fast")


# -- bad input: exit 2, one stderr line naming the file and the line or field -------------

BAD_FILES = [
    ("empty.down", "", "empty file"),
    ("blank.csv", "\n  \n\t\n", "empty file"),
    ("back.down", "0\n5\n3\n9\n", "line 3: timestamp 3 ms goes backwards"),
    ("zero.down", "0\n0\n0\n", "last timestamp is 0 ms"),
    ("junk.down", "0\n10\n1x\n", "line 3: expected one integer timestamp"),
    ("two.down", "0\n10 20\n30\n", "line 2: expected one integer timestamp"),
    ("neg.cooked", "0 1.0\n1 -2.0\n", "line 2: rate -2.0 Mbit/s is negative"),
    ("nan.cooked", "0 1.0\n1 nan\n", "line 2: rate nan Mbit/s is not finite"),
    ("inf.cooked", "0 1.0\n1 inf\n", "line 2: rate inf Mbit/s is not finite"),
    ("back.cooked", "0 1.0\n2 1.0\n1 1.0\n", "line 3: time 1.0 s is not after"),
    ("dup.cooked", "0 1.0\n0 1.0\n", "line 2: time 0.0 s is not after"),
    ("cols.cooked", "0 1.0\n1 1.0 7\n", "line 2: expected 2 columns"),
    ("word.cooked", "0 1.0\n1 fast\n", "line 2: 'fast' is not a number"),
    ("zerocap.cooked", "0 0\n1 0\n", "total capacity is zero"),
    ("header.csv", "t,r\n0,1\n", "line 1: header must be time_s,rate_bps"),
    ("field.csv", "0,1\n1,,2\n", "line 2: expected time_s,rate_bps"),
    ("neglat.csv", "0,1,0.1\n1,1,-0.1\n", "line 2: latency -0.1 s is negative"),
    ("duration.csv", "# duration_s=0.5\n0,1\n1,1\n", "duration_s=0.5 must exceed"),
    ("syntax.json", '[{"duration_ms": 1000,\n "bandwidth_kbps": }]', "line 2: invalid JSON"),
    ("shape.json", '{"duration_ms": 1000}', "must be a non-empty list"),
    ("missing.json", '[{"duration_ms": 1000, "bandwidth_kbps": 5}, {"duration_ms": 1000}]',
     "entry 1: missing field 'bandwidth_kbps'"),
    ("negbw.json", '[{"duration_ms": 1000, "bandwidth_kbps": -5, "latency_ms": 20}]',
     "entry 0: bandwidth_kbps must be a finite number >= 0"),
    ("negdur.json", '[{"duration_ms": -1, "bandwidth_kbps": 5, "latency_ms": 20}]', "entry 0: duration_ms"),
    ("text.json", '[{"duration_ms": "1s", "bandwidth_kbps": 5}]', "entry 0: duration_ms must be a number"),
    ("zerocap.json", '[{"duration_ms": 1000, "bandwidth_kbps": 0, "latency_ms": 20}]', "total capacity is zero"),
    ("words.txt", "hello world again\n", "unknown trace format"),
    ("binary.bin", bytes(range(1, 200)), "unknown trace format"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_exit_2_one_line(tmp_path, capsys, name, content, message):
    path = write(tmp_path, name, content)
    rc, out, err = run(capsys, "traces", "info", path)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err.startswith(f"abrlab traces: error: {path}: ")
    assert message in err


@pytest.mark.parametrize("argv, message", [
    (["traces", "info", "{tmp}/nope.down"], "nope.down: no such file"),
    (["traces", "info", "{tmp}/*.nothing"], "no files match this pattern"),
    (["traces", "info", "{tmp}/emptydir"], "emptydir: directory holds no trace files"),
    (["traces", "convert", "{tmp}/emptydir", "{tmp}/x.csv"], "emptydir: is a directory"),
    (["traces", "convert", "{tmp}/ok.down", "{tmp}/x.weird"], "x.weird: cannot tell the output format"),
    (["traces", "convert", "{tmp}/ok.down", "{tmp}/x.csv", "--to", "xml"], "unknown trace format 'xml'"),
    (["traces", "convert", "{tmp}/ok.down", "{tmp}/no/such/dir/x.csv"], "cannot write"),
    (["traces", "info", "{tmp}/ok.down", "--from", "sabre"], "ok.down: line 2: invalid JSON (Extra data"),
    (["traces", "synth", "outages", "{tmp}/o.csv", "--period", "5", "--outage", "6"], "outage_s (6 s) must be"),
    (["traces", "synth", "markov", "{tmp}/m.csv", "--switch-prob", "2"], "switch_prob must be between 0 and 1"),
    (["traces", "synth", "steps", "{tmp}/s.csv", "--rates", "0,0"], "every rate is 0"),
])
def test_bad_arguments_exit_2_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "emptydir").mkdir()
    write(tmp_path, "ok.down", "0\n10\n")
    rc, _, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("abrlab traces: error: ")
    assert message in err


def test_unreadable_file_exit_2(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "locked.down", "0\n10\n")

    def deny(self):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", deny)
    rc, _, err = run(capsys, "traces", "info", path)
    assert rc == 2 and err.strip() == f"abrlab traces: error: {path}: cannot read (Permission denied)"
