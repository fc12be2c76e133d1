"""The crowd's terminal side: the dashboard's screen from events, progress lines, the report."""
from __future__ import annotations

import io

from rich.console import Console

from netem import synth
from netem.content import synthetic
from player.cli.crowd_dashboard import CrowdModel, progress_line, render
from player.cli.crowd_report import print_report
from player.core.crowd import Bottleneck, CrowdClient, simulate_crowd


def model() -> CrowdModel:
    movie = synthetic(duration_s=20.0, segment_duration_s=2.0, seed=1)
    group = Bottleneck(synth.constant(4e6, 100.0), [CrowdClient(movie, "bola"), CrowdClient(movie, "bba")])
    return CrowdModel(group, {"trace": "four.json", "policies": ["bola", "bba"], "capacity_bps": 4e6})


def test_events_move_the_model_and_the_screen_shows_every_client():
    m = model()
    m.on_event(0, {"event": "session_start", "t_s": 0.1})
    m.on_event(0, {"event": "decision", "t_s": 0.2, "segment": 0, "rung": 2, "bitrate_bps": 1.2e6})
    m.on_event(0, {"event": "download", "t_s": 1.0, "segment": 0, "buffer_s": 2.0})
    m.on_event(1, {"event": "session_start", "t_s": 0.3})
    m.on_event(1, {"event": "stall_start", "t_s": 0.5})
    assert m.state == ["playing", "stalled"] and m.segments == [1, 0] and m.stalls == [0, 1]
    console = Console(record=True, width=110, height=40, file=io.StringIO())
    console.print(render(m, 110, 40))
    text = console.export_text()
    for want in ("abrlab crowd", "every client, one chart", "bitrate per client", "link utilisation", "bola",
                 "stalled", "1.20"):
        assert want in text, want


def test_progress_lines_name_the_client():
    m = model()
    assert progress_line(m, 1, {"event": "session_start", "t_s": 0.0}).endswith("client 2 (bba) starts")
    assert "STALL" in progress_line(m, 0, {"event": "stall_start", "t_s": 0.0})
    assert progress_line(m, 0, {"event": "download", "t_s": 0.0}) is None


def test_report_prints_clients_and_group():
    m = model()
    res = simulate_crowd([m.group])[0]
    report = {"trace": "four.json", "simulated": {"group": res.metrics(), "clients": [c.summary() for c in res.clients]}}
    console = Console(record=True, width=160, file=io.StringIO())
    print_report(report, console)
    text = console.export_text()
    assert "simulated crowd on four.json (2 clients)" in text and "Jain (bitrate)" in text and "bba" in text


def test_report_at_80_columns_cuts_no_policy_name_or_number():
    """Piped output is 80 columns: every client's policy, segments and QoE appear whole (the
    table splits rather than abbreviating with an ellipsis)."""
    movie = synthetic(duration_s=20.0, segment_duration_s=2.0, seed=1)
    group = Bottleneck(synth.constant(4e6, 100.0), [CrowdClient(movie, "throughput"), CrowdClient(movie, "robustmpc")])
    res = simulate_crowd([group])[0]
    clients = [c.summary() for c in res.clients]
    report = {"trace": "a-rather-long-trace-name-for-a-bottleneck.json",
              "simulated": {"group": res.metrics(), "clients": clients}}
    console = Console(record=True, width=80, file=io.StringIO())
    print_report(report, console)
    text = console.export_text()
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    for c in clients:
        assert c["abr"] in text and f"{c['qoe']['total']:.1f}" in text


def test_sweep_table_prints_every_policy_with_its_intervals_at_80_columns():
    """`compare --clients N`'s table: each policy's metrics with their CIs, whole, at 80
    columns (here two presets, so the preset column shows)."""
    from player.cli.crowd_report import print_sweep

    def metric(m):
        return {"mean": m, "ci95": [m - 0.01, m + 0.01]}
    keys = ("jain_bitrate", "unfairness", "inefficiency_mean", "inefficiency_weighted", "instability_mean",
            "utilisation", "qoe_mean", "rebuffer_ratio")
    pol = [{"abr": a, "device": "none", "preset": p, "groups": 86, "clients": 4,
            **{k: metric(0.5 + i / 10) for i, k in enumerate(keys)}}
           for a, p in (("festive", "default"), ("throughput", "sabre"))]
    console = Console(record=True, width=80, file=io.StringIO())
    print_sweep({"policies": pol}, console)
    text = console.export_text()
    assert "4 players per bottleneck" in text and "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    for want in ("festive", "throughput", "sabre", "0.500 [0.490, 0.510]", "1.1 [1.1, 1.1]", "1.2000 [1.1900, 1.2100]"):
        assert want in text, want
