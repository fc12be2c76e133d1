"""`abrlab compare`: identities with resolved parameters, --abr-param for file policies,
progress, tables that fit 80 columns, the QoE plot's axis, nothing created before the
inputs are checked, the help text."""
from __future__ import annotations

import io
import json
import re
import sys

import numpy as np
import pytest
from rich.console import Console

from labdata import compare_cmd, csv_lines, make_workload, run_cli
from player.cli.commands.compare import eta_text, print_tables
from player.cli.main import main
from player.lab import plots
from player.lab.results import CSV_FIELDS

PARAMS = CSV_FIELDS.index("abr_params")

HARMONIC = '''
import numpy as np
import abr

class HarmonicStep(abr.Policy):
    """The highest rung below `safety` x the harmonic mean of the last throughputs."""
    PARAMS = (abr.Param("safety", {safety}, "", "fraction of the estimate to use"),)

    def _select(self, obs):
        tp = obs.throughput_bps
        ok = ~np.isnan(tp)
        inverse = np.where(ok, 1.0 / np.where(ok, tp, 1.0), 0.0).sum(axis=1)
        hm = ok.sum(axis=1) / np.where(inverse > 0, inverse, np.inf)      # 0 before the first sample
        return abr.highest_below(self.safety * hm, self.ladder.bitrates_bps)
'''


@pytest.fixture()
def workload(tmp_path):
    return make_workload(tmp_path)


def write_policy(tmp_path, safety: float):
    (tmp_path / "pol").mkdir(exist_ok=True)
    (tmp_path / "pol" / "harm.py").write_text(HARMONIC.format(safety=safety))


def params_column(out) -> list[str]:
    return [r[PARAMS] for r in csv_lines(out / "sessions.csv")[1:]]


def test_rows_carry_the_resolved_parameters_and_the_source_of_a_file_policy(workload, tmp_path, monkeypatch, capsys):
    traces, movie = workload
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, 0.9)
    argv = ["compare", "--traces", *traces, "--movie", movie, "--abr", "pol/harm.py:HarmonicStep,bola",
            "--preset", "sabre", "--out", "out", "--no-plots", "--executor", "inprocess", "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    first = params_column(tmp_path / "out")
    harm = {p for p in first if p.startswith("HarmonicStep")}
    assert len(harm) == 1 and "safety=0.9" in harm.pop()
    assert all("source=sha256:" in p for p in first if p.startswith("HarmonicStep"))
    # bola under the sabre preset: the policy the preset means by it, with every parameter
    import abr
    from player.core import presets

    cls = abr.policy_class(presets.get("sabre").abr_aliases.get("bola", "bola"))
    (bola,) = {p for p, r in zip(first, csv_lines(tmp_path / "out" / "sessions.csv")[1:]) if r[1] == "bola"}
    assert bola.startswith(cls.name + "(") and all(f"{q.name}=" in bola for q in cls.PARAMS) and cls.PARAMS
    # edit the default in the file: the old rows are not reused
    write_policy(tmp_path, 0.5)
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    second = params_column(tmp_path / "out")
    assert len(second) == len(first) + len(traces)
    assert {p["abr"]: p["sessions"] for p in summary["policies"]} == {"pol/harm.py:HarmonicStep": 6, "bola": 6}
    assert "safety=0.5" in next(p["params"] for p in summary["policies"] if p["abr"] != "bola")


@pytest.mark.parametrize("given", ["HarmonicStep.safety=0.8", "pol/harm.py:HarmonicStep.safety=0.8", "safety=0.8"])
def test_abr_param_reaches_a_file_policy(workload, tmp_path, monkeypatch, capsys, given):
    traces, movie = workload
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, 0.9)
    rc = main(["compare", "--traces", *traces[:2], "--movie", movie, "--abr", "pol/harm.py:HarmonicStep",
               "--abr-param", given, "--out", "out", "--no-plots", "--executor", "inprocess", "--json"])
    assert rc == 0, capsys.readouterr().err
    assert {p.split(" source=")[0] for p in params_column(tmp_path / "out")} == {"HarmonicStep(safety=0.8)"}


@pytest.mark.parametrize("given, says", [("safety=0.8", "say which policy"), ("nosuch.safety=0.8", "'nosuch'"),
                                         ("HarmonicStep.bogus=1", "bogus")])
def test_abr_param_mistakes_are_one_line(workload, tmp_path, monkeypatch, capsys, given, says):
    traces, movie = workload
    monkeypatch.chdir(tmp_path)
    write_policy(tmp_path, 0.9)
    rc = main(["compare", "--traces", *traces[:2], "--movie", movie, "--abr", "pol/harm.py:HarmonicStep,bba",
               "--abr-param", given, "--out", "out", "--no-plots", "--executor", "inprocess"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and says in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_nothing_is_created_before_every_input_is_checked(workload, tmp_path, capsys):
    traces, movie = workload
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"duration_ms\": 1000}]")
    for extra in ([str(tmp_path / "missing.json")], [str(bad)]):
        out = tmp_path / "out"
        rc = main(["compare", "--traces", *traces, *extra, "--movie", movie, "--abr", "bba", "--out", str(out),
                   "--no-plots", "--executor", "inprocess"])
        err = capsys.readouterr().err
        assert rc == 2 and extra[0] in err and "\n" not in err.strip()
        assert not out.exists()
        assert "computing" not in err               # no progress bar drawn for a run that cannot start


def test_resume_says_what_is_reused_and_what_is_computed(workload, tmp_path):
    traces, movie = workload
    out = tmp_path / "out"
    assert run_cli(compare_cmd(traces, movie, out, "--executor", "inprocess")).returncode == 0
    r = run_cli(compare_cmd(traces, movie, out, "--executor", "inprocess", "--repeat-to", "10"))
    assert r.returncode == 0, r.stderr
    assert "reused 12, computing 8" in r.stderr
    assert re.search(r"simulated 8 sessions in [\d.]+ s .*; reused 12 from sessions.csv", r.stderr)


def test_eta_comes_from_the_throughput_measured_in_this_run():
    # 100 computed in 10 s: 10 sessions/s; 900 left: 90 s (the 5,000 reused do not count)
    assert eta_text(100, 1000, 10.0) == "ETA 0:01:30 (10/s)"
    assert eta_text(0, 1000, 3.0) == "ETA after the first batch"
    assert eta_text(1000, 1000, 12.34) == "12.3 s"


def summary_for_tables() -> dict:
    pol = []
    for i, name in enumerate(["robustmpc", "throughput", "examples/policies/harmonic.py:HarmonicStep"]):
        for device in ("mobile", "tv"):
            for preset in ("default", "pensieve"):
                pol.append({"abr": name, "params": "", "device": device, "preset": preset, "sessions": 123456,
                            "qoe_model": "linear", "qoe_mean": -1234.5 - i, "qoe_ci95": [-18523.25, -1000.75],
                            "qoe_median": -123.4, "qoe_p10": -98765.4, "avg_bitrate_bps": 12.345e6,
                            "rebuffer_ratio": 0.123456, "rebuffer_s_mean": 1.0, "switches_per_min": 123.45,
                            "startup_s_mean": 12.34})
    paired = [{"a": "robustmpc", "b": "examples/policies/harmonic.py:HarmonicStep", "device": "mobile",
               "preset": "pensieve", "sessions": 123456, "mean_diff": -12345.67, "median_diff": 0.0,
               "a_better_frac": 0.5, "p": 1e-300, "p_holm": 1.23e-299, "significant": True}]
    return {"policies": pol, "paired": paired}


@pytest.mark.parametrize("width", [80, 100, 60])
def test_tables_fit_the_terminal_and_never_cut_a_number(width):
    buf = io.StringIO()
    print_tables(summary_for_tables(), Console(file=buf, width=width, force_terminal=False))
    text = buf.getvalue()
    lines = text.splitlines()
    assert max(map(len, lines)) <= width
    assert "…" not in text
    for number in ("123,456", "-1234.5", "[-18523.2, -1000.8]", "-123.4", "-98765.4", "12.35", "12.35", "123.45",
                   "12.34", "-12345.67", "1.2e-299"):
        assert number in text, number
    assert "HarmonicStep = examples/policies/harmonic.py:HarmonicStep" in text


def test_simulate_segments_fit_80_columns(workload):
    traces, movie = workload
    r = run_cli([sys.executable, "-m", "player.cli", "simulate", "--trace", traces[0], "--movie", movie,
                 "--segments"])
    assert r.returncode == 0
    assert max(map(len, r.stdout.splitlines())) <= 80 and "…" not in r.stdout
    assert re.search(r"^\s+0\s+0\.00\s+0\.00\s+\d+\s+[\d.]+\s+\d+x\d+\s+[\d.]+\s+", r.stdout, re.M)


def test_the_qoe_axis_shows_the_body_and_counts_the_tails():
    rng = np.random.default_rng(3)
    body = rng.uniform(-500, 200, 980)
    lo, hi = plots.qoe_axis(np.concatenate([body, np.full(20, -9000.0)]))
    assert -1000 < lo < body.min() and body.max() < hi < 260
    assert (body.max() - body.min()) / (hi - lo) > 0.6     # the body fills most of the axis
    lo, hi = plots.qoe_axis(body)                          # no far tail: everything shown
    assert lo < body.min() and hi > body.max() and hi - lo < 1.1 * (body.max() - body.min())


def test_the_plot_notes_what_was_clipped(workload, tmp_path):
    pytest.importorskip("matplotlib")
    from player.lab.table import GroupLabel, SweepRows

    q = np.concatenate([np.linspace(-500, 200, 98), [-9000.0, -8000.0]])
    rows = SweepRows("linear", [GroupLabel("bola", "", "none", "default")], np.zeros(100, int), np.arange(100),
                     np.zeros(100, int), {"qoe": q, "avg_bitrate_bps": np.ones(100), "rebuffer_s": np.zeros(100),
                                          "session_s": np.ones(100), "switches": np.zeros(100),
                                          "startup_s": np.zeros(100)})
    import matplotlib.pyplot as plt

    titles = []
    real = plt.Axes.set_title
    try:
        plt.Axes.set_title = lambda self, t, *a, **k: (titles.append(t), real(self, t, *a, **k))[1]
        written = plots.write(rows, tmp_path)
    finally:
        plt.Axes.set_title = real
    assert all(p.exists() for p in written)
    assert "2 session(s) (2%) below" in titles[0] and "min -9,000" in titles[0]


def test_help_says_95_percent_once():
    r = run_cli([sys.executable, "-m", "player.cli", "compare", "--help"])
    assert "95% bootstrap" in r.stdout and "%%" not in r.stdout


def test_a_one_policy_sweep_imports_nothing_it_does_not_need(workload, tmp_path):
    traces, movie = workload
    code = ("import sys; from player.cli.main import main; "
            f"rc = main(['compare', '--traces', *{traces!r}, '--movie', {movie!r}, '--abr', 'bola', '--out', "
            f"{str(tmp_path / 'out')!r}, '--no-plots', '--jobs', '1', '--json']); "
            "print(sorted(m for m in ('scipy.stats', 'scipy.special', 'asyncio', 'aiohttp', "
            "'matplotlib', 'distributed', 'concurrent.futures') "
            "if m in sys.modules), rc)")
    r = run_cli([sys.executable, "-c", code])
    assert r.stdout.strip().splitlines()[-1] == "[] 0", r.stdout + r.stderr
