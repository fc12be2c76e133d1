"""sessions.csv is never corrupted: kills at any byte, full disks, damaged lines, two runs at
once, duplicate rows (player/lab/results.py, player/lab/lock.py, the compare command)."""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import resource

import pytest

from labdata import compare_cmd, csv_lines, make_workload, run_cli
from player.lab import results as results_mod
from player.lab.lock import locked
from player.lab.results import CSV_FIELDS, ResultsFile, ResultsWriteError
from player.lab.sweep import Sweep, run_sweep


@pytest.fixture()
def workload(tmp_path):
    return make_workload(tmp_path)


def body_lines(data: bytes) -> list[bytes]:
    """The rows of a sessions.csv file's bytes, each with its CRLF (the header dropped)."""
    return data.splitlines(keepends=True)[1:]


def test_a_kill_at_every_byte_of_an_append_leaves_whole_rows(workload, tmp_path):
    traces, movie = workload
    out = tmp_path / "out"
    run_sweep(Sweep(traces[:3], movie, ["bba"]), out, "inprocess", chunk_size=1)   # three appends of one row
    path = out / "sessions.csv"
    full = path.read_bytes()
    last = body_lines(full)[-1]
    assert last.endswith(b"\r\n") and full.endswith(last)
    start = len(full) - len(last)
    results = ResultsFile(path)
    for cut in range(start, len(full) + 1):
        path.write_bytes(full[:cut])
        rows = results.rows()
        assert path.read_bytes() == (full if cut == len(full) else full[:start]), f"cut at byte {cut}"
        assert len(rows) == (3 if cut == len(full) else 2)
        if cut < len(full):          # the lost row appended again: the file is the uninterrupted one
            results.append(last)
            assert path.read_bytes() == full


def test_a_failed_append_puts_the_file_back_and_names_it(workload, tmp_path, monkeypatch):
    path = tmp_path / "sessions.csv"
    results = ResultsFile(path)
    row = dict.fromkeys(CSV_FIELDS, "1")
    results.append_rows([row])
    before = path.read_bytes()
    real_write = os.write

    def half_then_enospc(fd, data):
        if len(data) > 8:
            real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results_mod.os, "write", half_then_enospc)
    with pytest.raises(ResultsWriteError) as info:
        results.append_rows([row, row])
    assert str(path) in str(info.value) and "No space left" in str(info.value)
    assert path.read_bytes() == before


def test_a_full_disk_keeps_every_saved_row_and_a_rerun_resumes(workload, tmp_path):
    traces, movie = workload
    args = ("--repeat-to", "24", "--chunk-size", "4", "--executor", "inprocess", "--json")
    full = tmp_path / "full"
    assert run_cli(compare_cmd(traces, movie, full, *args)).returncode == 0
    reference = (full / "sessions.csv").read_bytes()
    limit = len(reference) // 2
    out = tmp_path / "limited"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = run_cli(compare_cmd(traces, movie, out, *args), preexec_fn=small_files)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    message = r.stderr.strip().splitlines()[-1]
    assert str(out / "sessions.csv") in message and "too large" in message
    kept = (out / "sessions.csv").read_bytes()
    assert 0 < len(kept) <= limit and kept.endswith(b"\r\n")
    assert all(len(row) == len(CSV_FIELDS) for row in csv_lines(out / "sessions.csv"))
    assert set(body_lines(kept)) <= set(body_lines(reference))
    r = run_cli(compare_cmd(traces, movie, out, *args))          # space again: resume
    assert r.returncode == 0, r.stderr
    assert sorted(body_lines((out / "sessions.csv").read_bytes())) == sorted(body_lines(reference))
    assert [p["sessions"] for p in json.loads(r.stdout)["policies"]] == [24, 24]


def test_damaged_lines_are_set_aside_and_recomputed(workload, tmp_path):
    traces, movie = workload
    out = tmp_path / "out"
    cmd = compare_cmd(traces, movie, out, "--executor", "inprocess", "--json")
    assert run_cli(cmd).returncode == 0
    path = out / "sessions.csv"
    reference = path.read_bytes()
    lines = reference.splitlines(keepends=True)
    glued = lines[3].rstrip(b"\r\n") + lines[4]              # a torn row the next append glued onto
    fields = next(csv.reader([lines[5].decode()]))
    fields[CSV_FIELDS.index("avg_bitrate_bps")] = "not-a-number"
    buf = io.StringIO()
    csv.writer(buf).writerow(fields)
    garbage = [b"garbage that is not a row\r\n", b'"' + b"x" * 200_000 + b'",1\r\n', glued, buf.getvalue().encode()]
    damaged = b"".join(lines[:3] + garbage[:2] + [glued] + lines[5:8] + garbage[3:] + lines[8:])
    path.write_bytes(damaged)
    r = run_cli(cmd)
    assert r.returncode == 0, r.stderr
    warnings = [l for l in r.stderr.splitlines() if "rejected" in l]
    assert len(warnings) == 1 and "4 line(s)" in warnings[0]
    assert (out / "sessions.rejected.csv").read_bytes() == b"".join(garbage)
    assert sorted(body_lines(path.read_bytes())) == sorted(body_lines(reference))
    summary = json.loads(r.stdout)
    assert [p["sessions"] for p in summary["policies"]] == [len(traces)] * 2


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(workload, tmp_path):
    traces, movie = workload
    out = tmp_path / "out"
    out.mkdir()
    cmd = compare_cmd(traces, movie, out, "--executor", "inprocess", "--json")
    with locked(out):
        r = run_cli(cmd)
    assert r.returncode == 2
    assert f"pid {os.getpid()}" in r.stderr and "\n" not in r.stderr.strip()
    assert not (out / "sessions.csv").exists()
    assert run_cli(cmd).returncode == 0                         # released: the next run goes ahead


def test_rows_written_twice_never_count_twice(workload, tmp_path):
    traces, movie = workload
    out = tmp_path / "out"
    cmd = compare_cmd(traces, movie, out, "--executor", "inprocess", "--json", "--repeat-to", "9")
    first = run_cli(cmd)
    assert first.returncode == 0
    path = out / "sessions.csv"
    data = path.read_bytes()
    path.write_bytes(data + b"".join(body_lines(data)))       # what two concurrent runs used to write
    again = run_cli(cmd)
    assert again.returncode == 0
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert [p["sessions"] for p in b["policies"]] == [9, 9]
    assert b["policies"] == a["policies"] and b["paired"] == a["paired"]


def test_a_header_of_another_version_is_refused_in_one_line(tmp_path):
    path = tmp_path / "sessions.csv"
    buf = io.StringIO()
    csv.writer(buf).writerow(["trace", "abr", "something_else"])
    path.write_text(buf.getvalue())
    from netem.errors import InputError

    with pytest.raises(InputError, match="columns differ"):
        ResultsFile(path).rows()


@pytest.mark.parametrize("fields", [
    ["a,b", 'say "hi"', "", "x", "y", "z"],            # commas and quotes inside fields: the csv path
    ["plain", "bola(gp=5.0, buffer_target_s=None)", "none", "p", "m", "1 2 3"],  # one quoted field: the fast path
    ["t", "", "", "", "", ""],
])
def test_fields_split_as_the_csv_module_reads_them(fields):
    from player.lab.results import split_fields

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    assert split_fields(buf.getvalue()) == fields


@pytest.mark.parametrize("line", ['a,"b', 'a,b"c",d', 'x,"y"z', "a,\x00,b"])
def test_lines_that_are_not_one_record_of_ours_do_not_split(line):
    from player.lab.results import split_fields

    out = split_fields(line)
    assert out is None or out != ["a", "b"]
    assert results_mod.parse_line((line + "\r\n").encode()) is None
