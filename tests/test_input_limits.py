"""Trace and content files cannot poison a run: values outside the stated physical bounds,
files that are not regular files, too large or too deeply nested, and content descriptions
that are unsafe or inconsistent each get one error line (exit status 2) naming the file,
the line or element and the value. Every command that reads traces takes `--from FMT`."""
from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from netem import content as content_mod
from netem import formats, inputfiles, synth
from netem.errors import InputError
from netem.trace import MAX_DURATION_S, MAX_LATENCY_S, MAX_RATE_BPS, Trace
from player.cli.main import build_parser, main

REPO = Path(__file__).resolve().parent.parent
MOVIE = REPO / "traces" / "content" / "demo-6rung-120s.json"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str, command: str) -> str:
    """The single stderr line of a refused command, without its prefix (compare's progress
    bar may leave an empty line)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    prefix = f"abrlab {command}: error: "
    assert lines[0].startswith(prefix), err
    return lines[0][len(prefix):]


# -- 1. values outside the physical bounds -----------------------------------------------

HUGE_RATE = [  # name, text, what the error must say (file line or entry, and the value)
    ("huge.csv", "time_s,rate_bps\n0,1e308\n1,1000000\n", "line 2: rate 1e+308 bit/s is above the limit"),
    ("huge.cooked", "0 1.0\n1 1e302\n", "line 2: rate 1e+302 Mbit/s is above the limit"),
    ("huge.json", '[{"duration_ms": 1000, "bandwidth_kbps": 1e305, "latency_ms": 0}]',
     "entry 0: bandwidth_kbps must be at most 1e+10 kbit/s (MAX_RATE_BPS), got 1e+305"),
]


@pytest.mark.parametrize("name, text, message", HUGE_RATE, ids=[h[0] for h in HUGE_RATE])
def test_simulate_refuses_a_huge_rate(tmp_path, capsys, name, text, message):
    path = write(tmp_path, name, text)
    rc, out, err = run(capsys, "simulate", "--trace", path, "--movie", MOVIE, "--json")
    assert rc == 2 and out == ""
    assert one_error_line(err, "simulate").startswith(f"{path}: {message}")


def test_compare_refuses_a_huge_rate_instead_of_reporting_nan(tmp_path, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    write(folder, "ok.csv", "0,2000000\n1,3000000\n")
    bad = write(folder, "zz.csv", "0,1e308\n1,1\n")
    rc, out, err = run(capsys, "compare", "--traces", folder, "--movie", MOVIE, "--abr", "bba",
                       "--executor", "inprocess", "--out", tmp_path / "out", "--no-plots", "--json")
    assert rc == 2 and out == ""
    assert one_error_line(err, "compare").startswith(f"{bad}: line 1: rate 1e+308 bit/s is above the limit")


def test_convert_refuses_a_huge_rate_and_writes_nothing(tmp_path, capsys):
    src = write(tmp_path, "huge.json", HUGE_RATE[2][1])
    for target in ("out.json", "out.down"):
        rc, _, err = run(capsys, "traces", "convert", src, tmp_path / target)
        assert rc == 2 and "entry 0: bandwidth_kbps must be at most" in one_error_line(err, "traces")
        assert not (tmp_path / target).exists()


@pytest.mark.parametrize("name, text, message", [
    ("lat.csv", "0,1,0.1\n1,1,5000\n", "line 2: latency 5000.0 s is above the limit of 3600 s"),
    ("lat.json", '[{"duration_ms": 1000, "bandwidth_kbps": 5, "latency_ms": 1e7}]',
     "entry 0: latency_ms must be at most 3.6e+06 ms (MAX_LATENCY_S), got 10000000.0"),
    ("bigint.json", '[{"duration_ms": 1000, "bandwidth_kbps": 1' + "0" * 400 + "}]",
     "entry 0: bandwidth_kbps must be at most 1e+10 kbit/s (MAX_RATE_BPS), got an integer of 401 digits"),
    ("inf.json", '[{"duration_ms": 1000, "bandwidth_kbps": Infinity}]', "entry 0: bandwidth_kbps must be a finite number >= 0, got inf"),
    ("bool.json", '[{"duration_ms": 1000, "bandwidth_kbps": true}]', "entry 0: bandwidth_kbps must be a number"),
    ("burst.down", "0\n" * 900_000 + "1\n",
     "line 900001: 900001 delivery opportunities in (0, 0.001] s are 1.08e+13 bit/s, above the limit"),
])
def test_values_beyond_the_bounds_name_line_and_value(tmp_path, capsys, name, text, message):
    path = write(tmp_path, name, text)
    rc, _, err = run(capsys, "traces", "info", path)
    assert rc == 2 and one_error_line(err, "traces").startswith(f"{path}: {message}")


def test_the_bounds_themselves_are_usable_and_give_finite_results():
    """A trace at the highest rate for the longest period simulates to finite numbers: the
    bounds are chosen so that nothing overflows (capacity 1e22 bits per period)."""
    from player.core.simulator import SessionSpec, simulate

    tr = synth.constant(MAX_RATE_BPS, MAX_DURATION_S, latency_s=MAX_LATENCY_S)
    movie = content_mod.load(MOVIE)
    summary = simulate([SessionSpec(tr, movie, "bola")])[0].summary()
    numbers = [v for v in summary.values() if isinstance(v, float)] + [summary["qoe"]["total"]]
    assert all(math.isfinite(v) for v in numbers) and summary["bytes"] > 0
    # and the writers stay exact: whole kbit/s, whole ms
    doc = json.loads(formats.dumps(tr, "sabre"))
    assert doc == [{"duration_ms": 10 ** 12, "bandwidth_kbps": 10 ** 10, "latency_ms": 3_600_000}]


def test_trace_constructor_holds_the_bounds():
    with pytest.raises(InputError, match=r"step 1: rate 20000000000000.0 is above the limit of 1e\+13 bit/s"):
        Trace(np.array([0.0, 1.0]), np.array([1e6, 2e13]), 2.0)
    with pytest.raises(InputError, match=r"duration 2000000000.0 s is above the limit of 1e\+09 s"):
        Trace(np.array([0.0]), np.array([1e6]), 2e9)
    with pytest.raises(InputError, match=r"step 0: latency_s 4000.0 is above the limit"):
        Trace(np.array([0.0]), np.array([1e6]), 2.0, latency_s=np.array([4000.0]))
    with pytest.raises(InputError, match=r"step 0: loss 1.5 is above the limit"):
        Trace(np.array([0.0]), np.array([1e6]), 2.0, loss=np.array([1.5]))


def test_synthetic_parameters_hold_the_bounds(tmp_path, capsys):
    with pytest.raises(InputError, match="rate_bps must be a positive number and at most 1e\\+13"):
        synth.constant(1e308)
    with pytest.raises(InputError, match="latency_s must be a number >= 0 and at most 3600"):
        synth.constant(1e6, latency_s=1e9)
    # a noisy chain at the top of the range is clipped there, not refused
    tr = synth.markov(min_rate_bps=MAX_RATE_BPS, max_rate_bps=MAX_RATE_BPS, noise=5.0, duration_s=30)
    assert tr.rates_bps.max() == MAX_RATE_BPS
    rc, _, err = run(capsys, "traces", "synth", "constant", tmp_path / "c.csv", "--rate", "1e308")
    assert rc == 2 and "rate_bps must be a positive number and at most 1e+13" in err


# -- 2. files that would crash, hang or exhaust the loader ----------------------------------

@pytest.mark.parametrize("name, text, message", [
    ("deep.json", "[" * 100_000, "JSON nested more than 64 levels deep (MAX_JSON_DEPTH)"),
    ("deep2.json", "[" * 100_000 + "]" * 100_000, "JSON nested more than 64 levels deep (MAX_JSON_DEPTH)"),
    ("deep3.json", '[{"a": ' * 40 + "1" + "}]" * 40, "JSON nested more than 64 levels deep (MAX_JSON_DEPTH)"),
    ("digits.json", '[{"duration_ms": 1' + "0" * 5000 + ', "bandwidth_kbps": 1}]',
     "line 1: an integer of 5,001 digits (Python converts at most 4,300)"),
])
def test_nesting_and_long_integers_are_one_line(tmp_path, capsys, name, text, message):
    path = write(tmp_path, name, text)
    rc, _, err = run(capsys, "traces", "info", path)
    assert rc == 2 and one_error_line(err, "traces") == f"{path}: {message}"


def test_json_depth_ignores_brackets_in_strings():
    assert inputfiles.json_depth(b'[[1, [2]], {"a": {"b": []}}]') == 4
    assert inputfiles.json_depth(b'["[[[[", "\\\\", "\\"[", {"k]": [1]}]') == 3
    assert inputfiles.json_depth(b'{"name": "' + b"[" * 500 + b'"}') == 1
    assert inputfiles.json_depth(b"[" * 70 + b"]" * 70) == 65  # counted up to the limit + 1
    assert inputfiles.json_depth(b'[{"a": [{"a": [1]}]}]') == 5
    assert inputfiles.json_depth(b"[1, 2") == 1 and inputfiles.json_depth(b"[" * 1000) == 1000
    deep = json.dumps({"name": "[" * 100, "x": [[[1]]]})
    assert inputfiles.parse_json(deep, "x")["x"] == [[[1]]]


def test_a_link_to_dev_zero_is_refused_before_reading(tmp_path, capsys):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    link = tmp_path / "zero.down"
    link.symlink_to("/dev/zero")
    rc, _, err = run(capsys, "traces", "info", link)
    assert rc == 2
    assert one_error_line(err, "traces") == (f"{link}: is a character device; only regular files are read "
                                             "(symbolic links are followed)")
    with pytest.raises(InputError, match="is a character device"):
        content_mod.load(link)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "trace.down"
    os.mkfifo(fifo)
    outcome: list = []

    def load() -> None:
        try:
            formats.load(fifo)
        except InputError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # a regression blocks in open(): let it finish, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=20)
        pytest.fail("loading a FIFO blocked")
    assert outcome == [f"{fifo}: is a named pipe (FIFO); only regular files are read (symbolic links are followed)"]


def test_a_link_to_a_regular_file_is_followed(tmp_path):
    target = write(tmp_path, "real.csv", "0,1000000\n1,2000000\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert formats.load(link).mean_rate_bps == 1.5e6


def test_files_over_the_size_limit_are_refused(tmp_path, monkeypatch, capsys):
    movie = write(tmp_path, "big.json", json.dumps(content_mod.load(MOVIE).to_dict()))
    monkeypatch.setattr(inputfiles, "MAX_FILE_BYTES", 1000)
    trace = write(tmp_path, "big.down", "".join(f"{i}\n" for i in range(1, 400)))
    rc, _, err = run(capsys, "traces", "info", trace)
    assert rc == 2
    assert one_error_line(err, "traces") == (f"{trace}: is {trace.stat().st_size:,} bytes, more than the limit of "
                                             "1,000 bytes (0.000953674 MiB, MAX_FILE_BYTES) for an input file")
    with pytest.raises(InputError, match="bytes, more than the limit of 1,000 bytes"):
        content_mod.load(movie)


def test_the_size_limit_is_the_stated_one():
    assert inputfiles.MAX_FILE_BYTES == 256 * 2 ** 20 and inputfiles.MAX_JSON_DEPTH == 64


# -- 4. accepted but wrong: negative start, absurd length ---------------------------------

@pytest.mark.parametrize("name, text, message", [
    ("neg.cooked", "-5 1.0\n0 1.0\n5 1.0\n", "line 1: time -5.0 s is negative"),
    ("neg.csv", "# comment\n-5,1000\n0,1000\n", "line 2: time -5.0 s is negative"),
    ("long.cooked", "0 1.0\n1e300 1.0\n", "line 2: time 1e+300 s is 1e+300 s after the first sample, above the "
                                          "limit of 1e+09 s"),
    ("long.json", '[{"duration_ms": 1e300, "bandwidth_kbps": 5}]',
     "entry 0: duration_ms must be at most 1e+12 ms (MAX_DURATION_S), got 1e+300"),
    ("long2.json", '[{"duration_ms": 1e12, "bandwidth_kbps": 5}, {"duration_ms": 1e12, "bandwidth_kbps": 5}]',
     "entry 1: the trace reaches 2e+09 s by its end, above the limit of 1e+09 s"),
    ("long.csv", "# duration_s=1e300\n0,1000\n", "line 1: duration_s=1e+300 is above the limit of 1e+09 s"),
    ("long.down", "0\n1000000000001\n", "line 2: timestamp 1000000000001 ms makes the period 1000000000.001 s, "
                                        "above the limit of 1e+09 s"),
])
def test_negative_start_and_absurd_length_are_refused(tmp_path, capsys, name, text, message):
    path = write(tmp_path, name, text)
    rc, _, err = run(capsys, "traces", "info", path)
    assert rc == 2 and message in one_error_line(err, "traces")


def test_positive_offsets_are_still_shifted_away():
    # Pensieve semantics: the second line's rate covers the second since the first line
    tr = formats.loads("100 1.0\n101 2.0\n", "pensieve")
    assert tr.times_s.tolist() == [0.0] and tr.duration_s == 1.0 and tr.rates_bps.tolist() == [2e6]
    tr = formats.loads("100,1e6\n101,2e6\n", "csv")
    assert tr.times_s.tolist() == [0.0, 1.0]


# -- 3 and 5. content descriptions: one validation, precise messages -----------------------

def description(**changes) -> dict:
    doc = {"format": "abrlab-content/1", "name": "m", "segment_duration_s": 4.0,
           "rungs": [{"bitrate_bps": 300000, "codec": "avc1.64001f"}, {"bitrate_bps": 750000}],
           "segment_sizes_bytes": [[150000, 375000], [150000, 375000], [150000, 375000]]}
    doc.update(changes)
    return doc


EVIL_CODEC = 'avc1"/><evil x="'
BAD_MOVIES = [
    ("codec.json", description(rungs=[{"bitrate_bps": 300000, "codec": EVIL_CODEC}, {"bitrate_bps": 750000}]),
     "rungs[0].codec: 'avc1\"/><evil x=\"' is not an RFC 6381 codec string"),
    ("fps.json", description(rungs=[{"bitrate_bps": 300000}, {"bitrate_bps": 750000, "frame_rate": 1e9}]),
     "rungs[1]: field 'frame_rate': 1000000000.0 is above the limit of 1000 frames per second"),
    ("sizes.json", {"segment_duration_ms": 3000, "bitrates_kbps": [100, 200],
                    "segment_sizes_bits": [[1000, 2000], [1e300, 2000]]},
     "field 'segment_sizes_bits': segment 1, rung 0: 1e+300 is above the limit of 34,359,738,368 bits"),
    ("ragged.json", {"segment_duration_ms": 3000, "bitrates_kbps": [100, 200],
                     "segment_sizes_bits": [[1000, 2000], [1000, 2000], [1000]]},
     "field 'segment_sizes_bits': segment 2 has 1 size, expected 2 (one per rung)"),
    ("wide.json", {"segment_duration_ms": 3000, "bitrates_kbps": [100, 200],
                   "segment_sizes_bits": [[1000, 2000, 3000]]},
     "field 'segment_sizes_bits': segment 0 has 3 sizes, expected 2 (one per rung)"),
    ("ours-ragged.json", description(segment_sizes_bytes=[[150000, 375000], [150000]]),
     "field 'segment_sizes_bytes': segment 1 has 1 size, expected 2 (one per rung)"),
    ("string.json", description(segment_sizes_bytes=[[150000, "375000"]]),
     "field 'segment_sizes_bytes': segment 0, rung 1: expected a number, got '375000'"),
    ("width.json", description(rungs=[{"bitrate_bps": 300000, "width": 1e999}, {"bitrate_bps": 750000}]),
     "rungs[0]: field 'width' must be a whole number of pixels, 0 – 16384, got inf"),
    ("audio.json", description(audio_bitrate_bps="lots"), "field 'audio_bitrate_bps' must be a positive number"),
    ("longseg.json", description(segment_duration_s=1e300),
     "field 'segment_duration_s': 1e+300 is above the limit of 1e+09 s (MAX_DURATION_S)"),
]


@pytest.mark.parametrize("name, doc, message", BAD_MOVIES, ids=[b[0] for b in BAD_MOVIES])
def test_every_command_refuses_a_bad_movie_with_the_same_line(tmp_path, capsys, name, doc, message):
    path = write(tmp_path, name, json.dumps(doc))
    trace = write(tmp_path, "t.csv", "0,3000000\n1,3000000\n")
    lines = set()
    for command, argv in (
        ("simulate", ["simulate", "--trace", trace, "--movie", path]),
        ("compare", ["compare", "--traces", trace, "--movie", path, "--executor", "inprocess", "--out",
                     tmp_path / "out", "--no-plots"]),
        ("content", ["content", "make", tmp_path / "o", "--movie", path]),
        ("content", ["content", "info", path]),
    ):
        rc, _, err = run(capsys, *argv)
        assert rc == 2, (command, err)
        lines.add(one_error_line(err, command))
    (line,) = lines  # the same line from every command
    assert line.startswith(f"{path}: {message}")


def test_serve_and_play_use_the_same_validation(tmp_path, capsys):
    """`serve --movie` and `play --movie` build their presentation through `content.load`."""
    from player.cli.commands import serve

    path = write(tmp_path, "codec.json", json.dumps(BAD_MOVIES[0][1]))
    args = build_parser().parse_args(["serve", "--movie", str(path)])
    with pytest.raises(InputError, match=r"rungs\[0\]\.codec: .* is not an RFC 6381 codec string"):
        serve._source(args)
    rc, _, err = run(capsys, "play", "--headless", "--json", "--movie", path)
    assert rc == 2 and "rungs[0].codec" in one_error_line(err, "play")


def test_content_built_in_code_is_judged_the_same_by_the_packager():
    from netem import package

    rung = content_mod.Rung(300e3, 256, 144, codec=EVIL_CODEC)
    c = content_mod.Content((rung,), np.array([4.0]), np.array([[100000]]), name="code")
    with pytest.raises(InputError, match=r"code: rungs\[0\]\.codec: .* is not an RFC 6381 codec string"):
        package.SyntheticPresentation(c)


def test_content_sizes_cannot_overflow_the_byte_counts():
    with pytest.raises(InputError, match=r"segment 0, rung 0: size 1e\+30 bytes is above the limit"):
        content_mod.Content((content_mod.Rung(300e3),), np.array([4.0]), np.array([[1e30]]))
    top = content_mod.Content((content_mod.Rung(300e3),), np.full(3, 4.0), np.full((3, 1), 2.0 ** 32))
    assert top.segment_sizes_bytes.sum() == 3 * 2 ** 32 and top.summary()["mean_bitrate_bps"][0] > 0


@pytest.mark.parametrize("codec", ["avc1.64001f", "avc3.4d401e", "hvc1.1.6.L93.B0", "hev1.2.4.L120.B0",
                                   "av01.0.08M.08", "vp09.00.10.08", "dvh1.05.06", "ec-3"])
def test_real_codec_strings_are_accepted(codec):
    c = content_mod.Content((content_mod.Rung(300e3, codec=codec),), np.array([4.0]), np.array([[1000]]))
    assert content_mod.validate(c) is c


def test_pensieve_folder_files_are_read_safely(tmp_path):
    folder = tmp_path / "movie"
    folder.mkdir()
    for i in range(2):
        (folder / f"video_size_{i}").write_text("1000\n2000\n")
    (folder / "ladder.json").write_text(json.dumps({"bitrates_bps": [300000, 750000], "segment_duration_s": 2}))
    c = content_mod.load(folder)
    assert c.n_rungs == 2 and c.n_segments == 2 and c.segment_duration_s == 2.0
    (folder / "ladder.json").write_text(json.dumps({"bitrates": [1]}))
    with pytest.raises(InputError, match="ladder.json: missing field 'bitrates_bps'"):
        content_mod.load(folder)
    (folder / "ladder.json").unlink()
    (folder / "video_size_1").unlink()
    (folder / "video_size_1").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="video_size_1: is a character device"):
        content_mod.load(folder)


def test_toml_nesting_and_long_integers_are_one_line(tmp_path):
    with pytest.raises(InputError, match="TOML nested more deeply than the parser allows"):
        content_mod.load(write(tmp_path, "deep.toml", "a = " + "[" * 100_000))
    with pytest.raises(InputError, match="line 1: an integer of 5,001 digits"):
        content_mod.load(write(tmp_path, "long.toml", "a = 1" + "0" * 5000 + "\n"))


# -- 6. --from on every command that reads traces ------------------------------------------

BOM_SABRE = b"\xef\xbb\xbf" + b'[{"duration_ms": 60000, "bandwidth_kbps": 3000, "latency_ms": 20}]'


def test_every_trace_command_has_the_same_from_option():
    parser = build_parser()
    for argv in (["simulate", "--trace", "t", "--movie", "m"], ["compare", "--traces", "t", "--movie", "m",
                                                                 "--out", "o"],
                 ["serve", "--movie", "synthetic"], ["play"], ["proxy", "--upstream", "http://x"],
                 ["traces", "info", "t"], ["traces", "convert", "a", "b"]):
        args = parser.parse_args([*argv, "--from", "sabre"])
        assert args.trace_format == "sabre", argv


def test_the_unknown_format_error_names_the_option(tmp_path, capsys):
    path = write(tmp_path, "words.txt", "hello world again\n")
    rc, _, err = run(capsys, "simulate", "--trace", path, "--movie", MOVIE)
    assert rc == 2 and one_error_line(err, "simulate") == (
        f"{path}: unknown trace format (expected Mahimahi, Pensieve cooked, Sabre JSON or CSV; if it is one of "
        "these, name it with --from FMT, mahimahi, pensieve, sabre, csv)")


def test_a_trace_detection_misreads_loads_with_from(tmp_path, capsys):
    """A Sabre JSON file with a byte-order mark, named .txt: its first line looks like CSV."""
    path = write(tmp_path, "trace.txt", BOM_SABRE)
    rc, _, err = run(capsys, "simulate", "--trace", path, "--movie", MOVIE, "--json")
    assert rc == 2 and "line 1: header must be time_s,rate_bps" in one_error_line(err, "simulate")
    rc, out, err = run(capsys, "simulate", "--trace", path, "--movie", MOVIE, "--json", "--from", "sabre")
    assert rc == 0, err
    assert json.loads(out)["rebuffer_s"] >= 0
    rc, out, err = run(capsys, "compare", "--traces", path, "--movie", MOVIE, "--abr", "bba", "--executor",
                       "inprocess", "--out", tmp_path / "out", "--no-plots", "--json", "--from", "sabre")
    assert rc == 0, err
    assert json.loads(out)["sweep"]["sessions"] == 1


def test_serve_passes_from_to_the_loader(tmp_path):
    from player.cli.commands import serve

    path = write(tmp_path, "trace.txt", BOM_SABRE)
    args = build_parser().parse_args(["serve", "--movie", "synthetic", "--trace", str(path), "--from", "sabre"])
    (trace,) = serve.load_traces(args)
    assert trace.format == "sabre" and trace.mean_rate_bps == 3e6
    args = build_parser().parse_args(["serve", "--movie", "synthetic", "--trace", str(path)])
    with pytest.raises(InputError, match="header must be"):
        serve.load_traces(args)
