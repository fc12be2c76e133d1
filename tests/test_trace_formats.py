"""Trace loaders and writers: each format's semantics, round trips, the Mahimahi writer's
one-packet guarantee, and every trace file in ../shared checked against an independent
plain-Python reading of the raw file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netem import formats, synth
from netem.errors import InputError
from netem.trace import Trace
from helpers import shared_path

PACKET_BITS = 12000


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def delivered_bits(ms: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Mahimahi's delivered capacity by time t (opportunities at or before t)."""
    return np.searchsorted(ms, np.rint(np.asarray(t_s) * 1000), side="right") * PACKET_BITS


def capacity_bits(trace: Trace, t_s: np.ndarray) -> np.ndarray:
    """The trace's cumulative rate-based capacity at times t within one period."""
    ends = np.append(trace.times_s, trace.duration_s)
    cum = np.concatenate([[0.0], np.cumsum(trace.rates_bps * trace.step_durations_s)])
    return np.interp(t_s, ends, cum)


# -- Mahimahi -----------------------------------------------------------------------------

def test_mahimahi_keeps_packets_and_bins_seconds(tmp_path):
    tr = formats.load(write(tmp_path, "a.down", "0\n0\n1500\n1500\n2000\n5000\n6500\n"))
    assert tr.format == "mahimahi" and tr.name == "a"
    assert tr.duration_s == 6.5
    np.testing.assert_array_equal(tr.packet_times_s, [0, 0, 1.5, 1.5, 2.0, 5.0, 6.5])
    # bins (k, k+1]; 0 ms counts at the period's end; empty runs collapse to one zero step
    np.testing.assert_array_equal(tr.times_s, [0, 1, 2, 4, 5, 6])
    np.testing.assert_array_equal(tr.rates_bps / PACKET_BITS, [0, 3, 0, 1, 0, 6])
    assert tr.capacity_bits == 7 * PACKET_BITS
    assert np.dot(tr.rates_bps, tr.step_durations_s) == pytest.approx(7 * PACKET_BITS)


def test_mahimahi_bins_agree_with_delivery_at_whole_seconds(tmp_path):
    rng = np.random.default_rng(1)
    ms = np.sort(rng.integers(0, 20_000, 3000))
    ms[-1] = 20_000
    tr = formats.load(write(tmp_path, "r.down", "\n".join(map(str, ms)) + "\n"))
    s = np.arange(1, 20)
    zeros = np.count_nonzero(ms == 0)
    np.testing.assert_allclose(capacity_bits(tr, s), delivered_bits(ms, s) - zeros * PACKET_BITS)


def test_mahimahi_tolerates_crlf_blank_lines_and_spaces(tmp_path):
    tr = formats.load(write(tmp_path, "c.down", "0\r\n 3 \r\n\r\n\t10\r\n"))
    np.testing.assert_array_equal(tr.packet_times_s, [0, 0.003, 0.010])


def test_mahimahi_long_silence_does_not_allocate_per_second(tmp_path):
    tr = formats.load(write(tmp_path, "s.down", "0\n1000000000000\n"))
    assert tr.duration_s == 1e9
    assert tr.times_s.size == 2 and tr.capacity_bits == 2 * PACKET_BITS


def test_mahimahi_writer_gives_packets_back_exactly(tmp_path):
    text = "0\n0\n7\n7\n7\n250\n1999\n2000\n"
    tr = formats.load(write(tmp_path, "x.down", text))
    assert formats.dumps(tr, "mahimahi") == text


def test_mahimahi_writer_never_ahead_and_less_than_one_packet_behind():
    tr = synth.markov(seed=4, duration_s=40, step_s=0.37, max_rate_bps=60e6)
    ms = formats.delivery_opportunities_ms(tr)
    assert ms[-1] == 40_000 and np.all(np.diff(ms) >= 0)
    t = np.arange(0, 40_000) / 1000.0  # every whole millisecond
    diff = delivered_bits(ms, t) - capacity_bits(tr, t)
    assert diff.max() <= 1e-6 * tr.capacity_bits
    assert diff[:-1].min() > -PACKET_BITS


@given(st.lists(st.floats(0, 50e6), min_size=1, max_size=30),
       st.lists(st.floats(0.01, 5.0), min_size=30, max_size=30))
def test_mahimahi_writer_property(rates, durations):
    rates = np.array(rates)
    if not np.any(rates * durations[:rates.size] > 0.05 * PACKET_BITS):
        rates[0] = 1e6
    tr = synth.steps(rates, durations[:rates.size])
    ms = formats.delivery_opportunities_ms(tr)
    period_ms = round(tr.duration_s * 1000)
    assert ms[-1] == period_ms
    t = np.arange(0, period_ms) / 1000.0
    diff = delivered_bits(ms, t) - capacity_bits(tr, t)
    assert diff.max() <= 1e-6 * tr.capacity_bits + 1e-3
    assert diff.min() > -PACKET_BITS - 1e-6 * tr.capacity_bits


def _mahimahi_sabre_mahimahi(text: str) -> tuple[np.ndarray, np.ndarray]:
    original = np.array([int(x) for x in text.split()])
    tr = formats.loads(text, "mahimahi")
    via_sabre = formats.loads(formats.dumps(tr, "sabre"), "sabre")
    assert via_sabre.packet_times_s is None
    final = np.array([int(x) for x in formats.dumps(via_sabre, "mahimahi").split()])
    return original, final


def _assert_whole_seconds_within_one_packet(original: np.ndarray, final: np.ndarray) -> None:
    """Cumulative delivered bits at every whole second, with Mahimahi's periodic reading:
    an opportunity at 0 ms is delivered at the end of the previous repetition."""
    assert final[-1] == original[-1]
    seconds = np.arange(1, original[-1] // 1000 + 1) * 1000
    seconds = np.append(seconds, original[-1])
    orig = np.searchsorted(original[original > 0], seconds, side="right")
    orig[-1] = original.size
    new = np.searchsorted(final, seconds, side="right")
    assert np.max(np.abs(new - orig)) <= 1, (seconds[np.argmax(np.abs(new - orig))], orig, new)


def test_mahimahi_sabre_mahimahi_synthetic():
    tr = synth.markov(seed=7, duration_s=90, max_rate_bps=30e6)
    text = formats.dumps(tr, "mahimahi")
    original, final = _mahimahi_sabre_mahimahi(text)
    _assert_whole_seconds_within_one_packet(original, final)


@pytest.mark.parametrize("name", ["ATT-LTE-driving-2016.down", "TMobile-LTE-driving.down"])
def test_mahimahi_sabre_mahimahi_real(name):
    path = shared_path("traces", "mahimahi-cellular", name)
    original, final = _mahimahi_sabre_mahimahi(path.read_text())
    _assert_whole_seconds_within_one_packet(original, final)
    assert abs(final.size - original.size) <= 1


# -- Pensieve cooked ----------------------------------------------------------------------

def test_pensieve_rate_covers_the_interval_ending_at_its_time(tmp_path):
    # as Pensieve's fixed_env reads it: 2.0 over (10, 11], 0.5 over (11, 12], 1.0 over (12, 15];
    # the first line's 1.5 is never used and the last time ends the period
    tr = formats.load(write(tmp_path, "trace_1", "10.0 1.5\n11.0 2.0\n12.0 0.5\n15.0 1.0\n"))
    assert tr.format == "pensieve"
    np.testing.assert_array_equal(tr.times_s, [0, 1, 2])
    np.testing.assert_array_equal(tr.rates_bps, [2e6, 0.5e6, 1e6])
    assert tr.duration_s == 5.0
    assert tr.capacity_bits == pytest.approx(2e6 + 0.5e6 + 3 * 1e6)


def test_pensieve_single_line_is_refused():
    with pytest.raises(InputError, match="2 lines at least"):
        formats.loads("3.5\t2.0\n", "pensieve")


def test_pensieve_zero_capacity_ignores_the_unused_first_rate():
    with pytest.raises(InputError, match="capacity is zero"):
        formats.loads("0 5.0\n1 0\n2 0\n", "pensieve")


def test_pensieve_writer_text_by_hand():
    # steps of 1 s at 1 and 2.5 Mbit/s: a first line at 0, then (end time, rate) per step
    assert formats.dumps(synth.steps([1e6, 2.5e6], 1.0), "pensieve") == "0.0\t1.0\n1.0\t1.0\n2.0\t2.5\n"


# -- Sabre JSON ---------------------------------------------------------------------------

def test_sabre_units_and_zero_duration_entries(tmp_path):
    doc = [{"duration_ms": 500, "bandwidth_kbps": 1000, "latency_ms": 40},
           {"duration_ms": 0, "bandwidth_kbps": 9999, "latency_ms": 99},
           {"duration_ms": 1500, "bandwidth_kbps": 2500.5, "latency_ms": 80}]
    tr = formats.load(write(tmp_path, "s.json", json.dumps(doc)))
    assert tr.format == "sabre"
    np.testing.assert_array_equal(tr.times_s, [0, 0.5])
    np.testing.assert_array_equal(tr.rates_bps, [1e6, 2.5005e6])
    np.testing.assert_allclose(tr.latency_s, [0.04, 0.08])
    assert tr.duration_s == 2.0


def test_sabre_without_latency():
    tr = formats.loads('[{"duration_ms": 1000, "bandwidth_kbps": 3}]')
    assert tr.latency_s is None and tr.mean_rate_bps == 3000


# -- CSV ----------------------------------------------------------------------------------

def test_csv_with_header_latency_and_duration(tmp_path):
    text = "# written by hand\n# duration_s=7.5\ntime_s,rate_bps,latency_s\n0,1e6,0.05\n2.5,3e6,0.1\n"
    tr = formats.load(write(tmp_path, "c.csv", text))
    np.testing.assert_array_equal(tr.times_s, [0, 2.5])
    np.testing.assert_array_equal(tr.latency_s, [0.05, 0.1])
    assert tr.duration_s == 7.5


def test_csv_without_header_uses_median_rule():
    tr = formats.loads("1,1000\n3,2000\n4,0\n", "csv")
    np.testing.assert_array_equal(tr.times_s, [0, 2, 3])
    assert tr.duration_s == 4.5 and tr.latency_s is None


# -- detection ----------------------------------------------------------------------------

def test_content_wins_over_extension(tmp_path):
    assert formats.load(write(tmp_path, "m.csv", "0\n5\n")).format == "mahimahi"
    assert formats.load(write(tmp_path, "p.down", "0 1\n1 2\n")).format == "pensieve"
    assert formats.load(write(tmp_path, "j.txt", '[{"duration_ms": 1, "bandwidth_kbps": 1}]')).format == "sabre"


def test_extension_names_the_parser_when_content_is_inconclusive(tmp_path):
    with pytest.raises(InputError, match=r"line 1: 'this' is not a number"):
        formats.load(write(tmp_path, "x.cooked", "this is\nnot 1\n"))
    with pytest.raises(InputError, match="invalid JSON"):
        formats.load(write(tmp_path, "bad.json", "nope\n"))
    with pytest.raises(InputError, match="unknown trace format"):
        formats.load(write(tmp_path, "bad.txt", "nope\n"))


def test_forced_format_and_aliases():
    assert formats.loads("0 1\n1 1\n", "cooked").format == "pensieve"
    with pytest.raises(InputError, match="unknown trace format 'xml'"):
        formats.loads("0 1\n", "xml")


# -- round trips --------------------------------------------------------------------------

def _sample_trace(latency: bool = True) -> Trace:
    return Trace(np.array([0.0, 0.71, 1.709, 4.0]), np.array([3e6, 0.0, 1.25e6, 7.7e6]), 5.3,
                 latency_s=np.array([0.02, 0.03, 0.02, 0.1]) if latency else None)


@pytest.mark.parametrize("fmt", ["csv", "sabre"])
def test_round_trip_keeps_everything(tmp_path, fmt):
    tr = _sample_trace()
    back = formats.load(formats.save(tr, tmp_path / f"t.{fmt}", fmt))
    np.testing.assert_allclose(back.times_s, tr.times_s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(back.rates_bps, tr.rates_bps, rtol=1e-12)
    np.testing.assert_allclose(back.latency_s, tr.latency_s, rtol=1e-12)
    assert back.duration_s == pytest.approx(tr.duration_s, rel=1e-12)


def test_pensieve_round_trip_of_regular_trace(tmp_path):
    tr = synth.steps([1e6, 2.5e6, 0.3e6], 1.0)
    back = formats.load(formats.save(tr, tmp_path / "p.cooked"))
    assert back.format == "pensieve" and back.duration_s == tr.duration_s
    np.testing.assert_allclose(back.rates_bps, tr.rates_bps, rtol=1e-12)


def test_pensieve_round_trip_of_irregular_steps(tmp_path):
    tr = Trace(np.array([0.0, 0.7, 3.2]), np.array([4e6, 0.0, 1.5e6]), 4.0)
    back = formats.load(formats.save(tr, tmp_path / "p.cooked"))
    np.testing.assert_allclose(back.times_s, tr.times_s, rtol=1e-12)
    np.testing.assert_allclose(back.rates_bps, tr.rates_bps, rtol=1e-12)
    assert back.duration_s == pytest.approx(4.0, rel=1e-12)


def test_mahimahi_round_trip_of_rate_trace(tmp_path):
    tr = synth.outages(4e6, 10.0, 2.0, 30.0)
    back = formats.load(formats.save(tr, tmp_path / "o.down"))
    assert back.duration_s == 30.0
    assert abs(back.capacity_bits - tr.capacity_bits) <= PACKET_BITS


def test_save_needs_a_format(tmp_path):
    with pytest.raises(InputError, match="cannot tell the format"):
        formats.save(_sample_trace(), tmp_path / "noext")
    with pytest.raises(InputError, match="cannot write"):
        formats.save(_sample_trace(), tmp_path / "missing" / "t.csv")


finite_rates = st.just(0.0) | st.floats(1e-3, 1e9)  # bit/s; no denormals, which no format can carry


@st.composite
def traces(draw) -> Trace:
    n = draw(st.integers(1, 40))
    steps = draw(st.lists(st.floats(1e-3, 1e4), min_size=n, max_size=n))
    rates = draw(st.lists(finite_rates, min_size=n, max_size=n))
    if not any(r > 0 for r in rates):
        rates[0] = 1.0
    ends = np.cumsum(steps)
    lat = draw(st.none() | st.lists(st.floats(0, 10), min_size=n, max_size=n))
    return Trace(np.concatenate([[0.0], ends[:-1]]), np.array(rates), float(ends[-1]),
                 latency_s=None if lat is None else np.array(lat))


@given(traces())
def test_csv_round_trip_is_exact(tr):
    back = formats.loads(formats.dumps(tr, "csv"))
    np.testing.assert_array_equal(back.times_s, tr.times_s)
    np.testing.assert_array_equal(back.rates_bps, tr.rates_bps)
    assert back.duration_s == tr.duration_s
    if tr.latency_s is None:
        assert back.latency_s is None
    else:
        np.testing.assert_array_equal(back.latency_s, tr.latency_s)


@given(traces())
def test_sabre_round_trip(tr):
    back = formats.loads(formats.dumps(tr, "sabre"))
    np.testing.assert_allclose(back.times_s, tr.times_s, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(back.rates_bps, tr.rates_bps, rtol=1e-12)
    assert back.duration_s == pytest.approx(tr.duration_s, rel=1e-9)
    # each step's duration comes back within the times' tolerance (2e-9 s + 1e-9 relative at
    # each end), so the capacity within the rate times that per step: a tiny capacity that is
    # the difference of two large times cannot hold a relative bound
    slack = float(np.sum(tr.rates_bps)) * 2 * (1e-9 + 1e-9 * tr.duration_s)
    assert back.capacity_bits == pytest.approx(tr.capacity_bits, rel=1e-9, abs=slack)
    expected_latency = np.zeros(tr.times_s.size) if tr.latency_s is None else tr.latency_s
    np.testing.assert_allclose(back.latency_s, expected_latency, rtol=1e-12, atol=1e-15)


# -- many files ---------------------------------------------------------------------------

def test_load_many_expands_directories_and_globs(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "b.down", "0\n10\n")
    write(tmp_path, "sub/a.csv", "0,1\n")
    write(tmp_path, ".hidden", "junk")
    names = [t.name for t in formats.load_many([tmp_path])]
    assert names == ["b", "a"]  # sorted by path: b.down < sub/a.csv
    assert [t.name for t in formats.load_many(str(tmp_path / "*.down"))] == ["b"]
    with pytest.raises(InputError, match="no files match"):
        formats.load_many([str(tmp_path / "*.nothing")])


# -- ../shared: every file, against an independent reading --------------------------------

def independent_mean_rate_bps(path: Path) -> float:
    """Plain Python, straight from the format's definition (not netem.formats)."""
    if path.suffix == ".json":
        entries = json.loads(path.read_text())
        bits = sum(e["bandwidth_kbps"] * 1000 * e["duration_ms"] / 1000 for e in entries)
        return bits / (sum(e["duration_ms"] for e in entries) / 1000)
    stamps = [int(line) for line in path.read_text().splitlines() if line.strip()]
    return len(stamps) * 1500 * 8 / (stamps[-1] / 1000)


@pytest.mark.parametrize("folder", ["hsdpa-3g", "lte-4g", "mahimahi-cellular"])
def test_every_shared_trace_matches_independent_mean(folder):
    files = sorted(f for f in shared_path("traces", folder).iterdir() if f.is_file())
    assert files
    bad = []
    for f in files:
        tr = formats.load(f)
        expected = independent_mean_rate_bps(f)
        if abs(tr.mean_rate_bps - expected) > 0.005 * expected:
            bad.append((f.name, tr.mean_rate_bps, expected))
        rate_mean = np.dot(tr.rates_bps, tr.step_durations_s) / tr.duration_s
        if abs(rate_mean - expected) > 0.005 * expected:
            bad.append((f.name, "binned", rate_mean, expected))
    assert not bad


@pytest.mark.parametrize("folder", ["hsdpa-3g", "lte-4g", "mahimahi-cellular"])
def test_writers_reproduce_shared_files_byte_for_byte(folder):
    for f in sorted(f for f in shared_path("traces", folder).iterdir() if f.is_file()):
        tr = formats.load(f)
        assert formats.dumps(tr, tr.format) == f.read_text(), f.name


def test_every_shared_trace_is_found(shared_dir):
    traces = formats.load_many([shared_dir / "traces"])
    assert len(traces) == len([f for f in (shared_dir / "traces").rglob("*") if f.is_file()])
    assert {t.format for t in traces} == {"sabre", "mahimahi"}


# -- peak and lowest rate over whole 1-second windows ---------------------------------------

def test_window_rates_by_hand():
    # [0, 0.5) at 10 Mbit/s then 1 Mbit/s to 3 s: windows hold 5.5, 1 and 1 Mbit
    assert Trace(np.array([0.0, 0.5]), np.array([10e6, 1e6]), 3.0).window_rates_bps(1.0) == (1e6, 5.5e6)
    # the partial last second (2, 2.5] is not a whole window
    assert Trace(np.array([0.0, 2.0]), np.array([1e6, 3e6]), 2.5).window_rates_bps(1.0) == (1e6, 1e6)
    # a period shorter than a window is one window: its mean, (0.2 + 0.9) Mbit / 0.5 s
    assert Trace(np.array([0.0, 0.2]), np.array([1e6, 3e6]), 0.5).window_rates_bps(1.0) == (2.2e6, 2.2e6)
    # 2-second windows over steps of 1 s at 1, 5, 3, 3 Mbit/s: 6 and 6 Mbit → 3 Mbit/s each
    tr = synth.steps([1e6, 5e6, 3e6, 3e6], 1.0)
    assert tr.window_rates_bps(2.0) == (3e6, 3e6) and tr.window_rates_bps(1.0) == (1e6, 5e6)


def test_window_rates_of_a_long_sparse_trace_cost_nothing_per_window(tmp_path):
    tr = formats.load(write(tmp_path, "s.down", "0\n1000000000000\n"))  # 1e9 s, two packets
    # both packets are delivered in the last second (the one at 0 ms ends the previous repetition)
    assert tr.window_rates_bps(1.0) == (0.0, 2 * PACKET_BITS)
    assert tr.summary()["peak_rate_1s_bps"] == 2 * PACKET_BITS


def test_mahimahi_peak_is_the_largest_one_second_count(tmp_path):
    # 3 packets at 1 ms, a burst of 50 in the last 2 ms: the step rate there is 300 Mbit/s
    text = "1\n1\n1\n" + "1999\n" * 48 + "2000\n2000\n"
    tr = formats.load(write(tmp_path, "b.down", text))
    assert tr.rates_bps.max() == pytest.approx(50 * PACKET_BITS / 1.0)  # bin (1, 2] is a whole second here
    assert tr.summary()["peak_rate_1s_bps"] == 50 * PACKET_BITS
    assert "max_rate_bps" not in tr.summary()


def test_peak_of_a_real_trace_against_plain_counting():
    """ATT-LTE-driving-2016: the largest packet count in a whole second (k, k+1], counted in
    plain Python; its largest step rate (a short last bin) is 132 Mbit/s."""
    path = shared_path("traces", "mahimahi-cellular", "ATT-LTE-driving-2016.down")
    stamps = [int(line) for line in path.read_text().split()]
    whole_seconds = stamps[-1] // 1000
    counts = [0] * whole_seconds
    for ms in stamps:
        if 0 < ms <= whole_seconds * 1000:
            counts[(ms - 1) // 1000] += 1
    tr = formats.load(path)
    low, peak = tr.window_rates_bps(1.0)
    assert peak == max(counts) * PACKET_BITS and low == min(counts) * PACKET_BITS
    assert peak < 30e6 < tr.rates_bps.max()
