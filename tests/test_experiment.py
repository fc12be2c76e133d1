"""Sweeps: resume without recomputation, crash safety, executors agree, the compare CLI."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from netem import formats, synth
from netem.content import save as save_content, synthetic
from netem.errors import InputError
from player.core import presets
from player.lab import sweep as experiment
from player.cli.main import main
from player.lab.results import ResultsFile
from player.lab.sweep import Sweep, run_sweep

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def workload(tmp_path):
    tdir = tmp_path / "traces"
    tdir.mkdir()
    for seed in range(6):
        tr = synth.markov(seed=seed, duration_s=120.0)
        formats.save(tr, tdir / f"m{seed}.json", "sabre")
    movie = tmp_path / "movie.json"
    save_content(synthetic(duration_s=60, seed=1), movie)
    return sorted(str(p) for p in tdir.iterdir()), str(movie)


def rows_by_key(out):
    """The rows of OUT/sessions.csv by (trace, policy, device, preset)."""
    return {(r["trace"], r["abr"], r["device"], r["preset"]): r for r in ResultsFile(Path(out) / "sessions.csv").rows()}


def test_resume_computes_only_what_is_missing(workload, tmp_path, monkeypatch):
    traces, movie = workload
    sweep = Sweep(traces, movie, ["bba", "rb"], presets=["default", "sabre"])
    out = tmp_path / "out"
    # first run: stop after two chunks, as a kill would
    calls = []
    real = experiment.run_chunk

    def counting(chunk):
        calls.append(len(chunk.traces))
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(chunk)

    monkeypatch.setattr(experiment, "run_chunk", counting)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, out, "inprocess", chunk_size=2)
    assert len(ResultsFile(out / "sessions.csv").rows()) == 4
    calls.clear()
    monkeypatch.setattr(experiment, "run_chunk", lambda c: (calls.append(len(c.traces)), real(c))[1])
    rows = run_sweep(sweep, out, "inprocess", chunk_size=2)
    assert sum(calls) == sweep.total() - 4          # only the missing sessions ran
    assert len(rows) == sweep.total() == 24
    calls.clear()
    rows_again = run_sweep(sweep, out, "inprocess", chunk_size=2)
    assert calls == [] and len(rows_again) == 24
    # and the resumed results equal a run that was never interrupted
    run_sweep(sweep, tmp_path / "fresh", "inprocess")
    a, b = rows_by_key(out), rows_by_key(tmp_path / "fresh")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k]["chosen"] == b[k]["chosen"] and float(a[k]["qoe"]) == pytest.approx(float(b[k]["qoe"]))


def test_torn_last_line_is_dropped(workload, tmp_path):
    traces, movie = workload
    sweep = Sweep(traces[:2], movie, ["bba"])
    out = tmp_path / "out"
    run_sweep(sweep, out, "inprocess")
    path = out / "sessions.csv"
    text = path.read_text()
    path.write_text(text[: len(text) - 25])         # a write cut short
    rows = run_sweep(sweep, out, "inprocess")
    assert len(rows) == 2
    with open(path) as fh:
        assert len(list(csv.DictReader(fh))) == 2


def test_repeated_traces_count_occurrences(workload, tmp_path):
    traces, movie = workload
    sweep = Sweep(traces[:2], movie, ["rb"], repeat_to=5)
    rows = run_sweep(sweep, tmp_path / "o", "inprocess", chunk_size=2)
    assert len(rows) == 5


def test_process_pool_and_dask_give_identical_results(workload, tmp_path):
    distributed = pytest.importorskip("distributed")
    traces, movie = workload
    sweep = Sweep(traces, movie, ["bola", "throughput"])
    run_sweep(sweep, tmp_path / "ref", "inprocess")
    run_sweep(sweep, tmp_path / "pool", "process", jobs=2, chunk_size=3)
    ref, pool = rows_by_key(tmp_path / "ref"), rows_by_key(tmp_path / "pool")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        addr = cluster.scheduler_address.replace("tcp://", "dask://")
        run_sweep(sweep, tmp_path / "dask", addr, chunk_size=3)
    dask_rows = rows_by_key(tmp_path / "dask")
    for other in (pool, dask_rows):
        assert other.keys() == ref.keys()
        for k in ref:
            assert other[k]["chosen"] == ref[k]["chosen"]
            assert other[k]["qoe"] == ref[k]["qoe"]


def test_compare_cli_writes_files_and_stats(workload, tmp_path, capsys):
    traces, movie = workload
    out = tmp_path / "cmp"
    rc = main(["compare", "--traces", str(Path(traces[0]).parent), "--movie", movie, "--abr", "bba,rb",
               "--out", str(out), "--executor", "inprocess", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert {p["abr"] for p in summary["policies"]} == {"bba", "rb"}
    for p in summary["policies"]:
        lo, hi = p["qoe_ci95"]
        assert lo <= p["qoe_mean"] <= hi
    assert len(summary["paired"]) == 1 and 0 <= summary["paired"][0]["p"] <= 1
    with open(out / "sessions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    for col in ("trace", "abr", "device", "preset", "avg_bitrate_bps", "time_avg_bitrate_bps", "rebuffer_s",
                "rebuffer_count", "startup_s", "switches", "qoe"):
        assert col in rows[0]
    assert set(r["trace"] for r in rows) == set(traces)
    assert (out / "summary.json").exists()
    assert (out / "qoe_cdf.png").exists() and (out / "bitrate_vs_rebuffer.png").exists()


def test_compare_cli_bad_input_is_one_line(workload, tmp_path, capsys):
    traces, movie = workload
    rc = main(["compare", "--traces", traces[0], "--movie", movie, "--abr", "nosuch", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nosuch" in err and "\n" not in err
    rc = main(["compare", "--traces", str(tmp_path / "none*"), "--movie", movie, "--out", str(tmp_path / "x")])
    assert rc == 2


def test_compare_survives_a_real_kill(workload, tmp_path):
    traces, movie = workload
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "player.cli", "compare", "--traces", *traces, "--movie", movie,
           "--abr", "bba,rb,bola,throughput", "--preset", "default,sabre,pensieve", "--repeat-to", "60",
           "--out", str(out), "--executor", "inprocess", "--chunk-size", "4", "--no-plots", "--json"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csv_path = out / "sessions.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if csv_path.exists() and csv_path.stat().st_size > 3000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    partial = ResultsFile(csv_path).rows()
    total = 60 * 4 * 3
    assert 0 < len(partial) < total, "the kill should land mid-sweep"
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    rows = ResultsFile(csv_path).rows()
    assert len(rows) == total


# -- batches, write units, CSV text, memory, Dask resume ------------------------------------------
def test_batch_sizes_follow_sessions_workers_and_memory():
    from player.lab.sweep import ROW_BYTES_PER_SEGMENT, batch_rows, split_sizes

    assert split_sizes(10_000, 4096, 2) == [2500] * 4          # 3 batches needed, rounded up to share
    assert split_sizes(10_001, 4096, 1) == [3334, 3334, 3333]
    assert split_sizes(86, 4096, 2) == [86]                    # too small to be worth splitting
    assert split_sizes(0, 4096, 2) == []
    gib = 1 << 30
    assert batch_rows(199, 2, memory_bytes=2 * gib) == 5620    # 2 GiB / 4 / 2 / 47,760 B
    assert batch_rows(199, 2, memory_bytes=8 * gib) == 8192    # 22,481: the cap
    assert ROW_BYTES_PER_SEGMENT == 240
    assert batch_rows(199, 2, memory_bytes=100_000_000) == 261   # 12.5 MB per worker / 47,760 B
    assert batch_rows(199, 64, memory_bytes=10_000_000) == 64  # never below the minimum


def test_a_big_batch_is_written_in_small_fsynced_units(workload, tmp_path, monkeypatch):
    traces, movie = workload
    appended = []
    real = ResultsFile.append
    monkeypatch.setattr(ResultsFile, "append", lambda self, data: (appended.append(data.count(b"\n")), real(self, data)))
    calls = []
    real_chunk = experiment.run_chunk
    monkeypatch.setattr(experiment, "run_chunk", lambda c: (calls.append(len(c.traces)), real_chunk(c))[1])
    run_sweep(Sweep(traces, movie, ["rb"], repeat_to=1100), tmp_path / "o", "inprocess")
    assert calls == [1100]                                      # one simulator batch
    assert appended == [512, 512, 76]                           # rows per append (+ fsync)


def test_rows_are_the_csv_modules_text_byte_for_byte(workload):
    """The column-at-a-time CSV equals csv.DictWriter over the per-session summaries."""
    import io

    from player.core.simulator import SessionSpec, simulate
    from player.lab.results import CSV_FIELDS, LIVE_FIELDS
    from player.lab.sweep import Chunk, policy_identity, run_chunk

    traces, movie = workload
    for abr_name, device, preset, model in (("bba", "none", "default", "linear"), ("dashjs", "mobile", "dashjs", "log"),
                                            ("robustmpc", "tv", "pensieve", "hd")):
        identity, _ = policy_identity(abr_name, {}, preset)
        chunk = Chunk(tuple(traces * 2), movie, abr_name, (), device, preset, model, identity, "", 5)
        got = b"".join(run_chunk(chunk).units)
        dev = None if device == "none" else experiment._device(device)
        results = simulate([SessionSpec(experiment._trace(t), experiment._movie(movie), abr_name, {}, dev, preset)
                            for t in chunk.traces])
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        for t, r in zip(chunk.traces, results):
            s = r.summary(model)
            q = s["qoe"]
            w.writerow({**s, "trace": t, "movie": movie, "abr_params": identity, "device": device,
                        "qoe": q["total"], "qoe_model": model, "qoe_utility": q["components"]["utility"],
                        "qoe_rebuffer_penalty": q["components"]["rebuffer_penalty"],
                        "qoe_smoothness_penalty": q["components"]["smoothness_penalty"],
                        "qoe_linear": s["qoe_all"]["linear"]["total"], "qoe_log": s["qoe_all"]["log"]["total"],
                        "qoe_hd": s["qoe_all"]["hd"]["total"], "qoe_twitch": s["qoe_all"]["twitch"]["total"],
                        **{k: s.get(k, float("nan")) for k in LIVE_FIELDS},   # a VoD session has none: nan
                        "chosen": " ".join(map(str, s["chosen"]))})
        assert got == buf.getvalue().encode(), abr_name


def test_a_million_rows_take_about_sixty_megabytes():
    from player.lab.table import SessionTable

    table = SessionTable("linear")
    n = 100_000
    key = table.key_id(("t", "bola", "", "none", "default", "m"))
    table.add(np.full(n, key), {c: np.zeros(n) for c in table.columns})
    assert table.nbytes == n * 8 * (1 + len(table.columns))    # 56 bytes a row: 56 MB for a million
    assert len(table.keys) == 1 and len(table) == n


def test_a_dask_sweep_stopped_midway_resumes(workload, tmp_path):
    distributed = pytest.importorskip("distributed")
    from player.lab.executors import Stopped

    traces, movie = workload
    sweep = Sweep(traces, movie, ["bola", "throughput"], repeat_to=12)
    run_sweep(sweep, tmp_path / "ref", "inprocess")
    seen = []

    def stop_after_first_unit(status):
        seen.append(status.computed)
        if status.computed:
            raise Stopped(signal.SIGTERM)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        addr = cluster.scheduler_address.replace("tcp://", "dask://")
        with pytest.raises(Stopped):
            run_sweep(sweep, tmp_path / "dask", addr, chunk_size=2, on_progress=stop_after_first_unit)
        partial = len(ResultsFile(tmp_path / "dask" / "sessions.csv").rows())
        assert 2 <= partial < 24
        rows = run_sweep(sweep, tmp_path / "dask", addr, chunk_size=2)
    assert len(rows) == 24
    ref, got = rows_by_key(tmp_path / "ref"), rows_by_key(tmp_path / "dask")
    assert ref.keys() == got.keys() and all(ref[k]["chosen"] == got[k]["chosen"] for k in ref)


def test_rows_are_not_reused_across_a_change_to_a_preset(workload, tmp_path, monkeypatch):
    """A row's identity names its preset; a preset redefined (as the default preset gained its
    6 ms per request) must not let old rows pass for new ones: the run refuses, naming it."""
    traces, movie = workload
    sweep = Sweep(traces[:2], movie, ["bba"], presets=["default", "sabre"])
    out = tmp_path / "out"
    run_sweep(sweep, out, "inprocess")
    assert len(run_sweep(sweep, out, "inprocess")) == 4          # unchanged: reused
    changed = replace(presets.PRESETS["default"], buffer_cap_s=presets.PRESETS["default"].buffer_cap_s + 1)
    monkeypatch.setitem(presets.PRESETS, "default", changed)
    with pytest.raises(InputError, match="preset default were computed under an earlier definition"):
        run_sweep(sweep, out, "inprocess")
    assert len(run_sweep(sweep, tmp_path / "new", "inprocess")) == 4   # a new folder is fine
