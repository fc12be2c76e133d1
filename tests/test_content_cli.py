"""`abrlab content make` / `content info`: files written, exit codes, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpegdash.parser import MPEGDASHParser

from netem import cenc
from netem import content as content_mod
from netem import isobmff as bm
from player.cli.main import main

REPO = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    rc = main(["content", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_make_from_ladder(tmp_path, capsys):
    rc, out, err = run(capsys, "make", tmp_path / "o", "--ladder", "300k,750k,1.2M", "--duration", "10",
                       "--segment", "2", "--audio")
    assert rc == 0, err
    report = json.loads(out)
    assert report["segments"] == 5 and report["rungs"] == 3 and report["files"] == 1 + 4 * 6
    mpd = MPEGDASHParser.parse((tmp_path / "o" / "manifest.mpd").read_text())
    assert [r.bandwidth for r in mpd.periods[0].adaptation_sets[0].representations] == [300000, 750000, 1200000]
    assert (tmp_path / "o" / "v2" / "5.m4s").is_file() and (tmp_path / "o" / "a0" / "init.mp4").is_file()
    total = sum(f.stat().st_size for f in (tmp_path / "o").rglob("*") if f.is_file())
    assert total == report["bytes"]


def test_make_from_movie_sizes_exact(tmp_path, capsys):
    c = content_mod.synthetic((200e3, 500e3), duration_s=12, segment_duration_s=3, seed=7)
    content_mod.save(c, tmp_path / "movie.json")
    rc, out, err = run(capsys, "make", tmp_path / "o", "--movie", tmp_path / "movie.json", "--addressing", "list")
    assert rc == 0, err
    for r in range(2):
        got = [(tmp_path / "o" / f"v{r}" / f"{i + 1}.m4s").stat().st_size for i in range(c.n_segments)]
        assert got == c.segment_sizes_bytes[:, r].tolist()


def test_make_segment_base_and_save_content(tmp_path, capsys):
    rc, out, err = run(capsys, "make", tmp_path / "o", "--ladder", "400k", "--duration", "8", "--addressing", "base",
                       "--save-content", tmp_path / "desc.json", "--seed", "3")
    assert rc == 0, err
    c = content_mod.load(tmp_path / "desc.json")
    data = (tmp_path / "o" / "v0.mp4").read_bytes()
    sidx = bm.parse_sidx(bm.find(bm.parse(data), "sidx"))
    assert [r.referenced_size for r in sidx.references] == c.segment_sizes_bytes[:, 0].tolist()


def test_make_protected_with_given_key(tmp_path, capsys):
    key, kid = "00112233445566778899aabbccddeeff", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    rc, out, err = run(capsys, "make", tmp_path / "o", "--ladder", "300k", "--duration", "4", "--protect", "clearkey",
                       "--key", key, "--kid", kid, "--addressing", "timeline")
    assert rc == 0, err
    report = json.loads(out)
    assert (report["key"], report["kid"]) == (key, kid)
    xml = (tmp_path / "o" / "manifest.mpd").read_text()
    assert 'cenc:default_KID="a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf"' in xml
    prot = cenc.Protection(bytes.fromhex(key), bytes.fromhex(kid))
    seg = (tmp_path / "o" / "v0" / "t0.m4s").read_bytes()
    clear = prot.decrypt_segment(seg)
    assert clear != seg and len(clear) == len(seg)


def test_max_duration_truncates(tmp_path, capsys):
    c = content_mod.synthetic((200e3,), duration_s=40, segment_duration_s=4)
    content_mod.save(c, tmp_path / "m.json")
    rc, out, _ = run(capsys, "make", tmp_path / "o", "--movie", tmp_path / "m.json", "--max-duration", "10")
    assert rc == 0 and json.loads(out)["segments"] == 2


@pytest.mark.parametrize("argv,needle", [
    (["--ladder", "300k,,750k", "--duration", "4"], "--ladder"),
    (["--ladder", "300k,fast", "--duration", "4"], "--ladder item 2"),
    (["--ladder", "300k", "--duration", "-4"], "--duration"),
    (["--ladder", "300k", "--duration", "4", "--segment", "zero"], "--segment"),
    (["--ladder", "300k"], "--duration"),
    ([], "--movie"),
    (["--ladder", "300k", "--duration", "4", "--protect", "clearkey", "--key", "12"], "--key"),
    (["--ladder", "300k", "--duration", "4", "--kid", "00" * 16], "--protect"),
    (["--ladder", "300k", "--duration", "4", "--audio", "--audio-bitrate", "lots"], "--audio-bitrate"),
    (["--movie", "/nonexistent/movie.json"], "/nonexistent/movie.json"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    rc, out, err = run(capsys, "make", tmp_path / "o", *argv)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_malformed_description_names_the_field(tmp_path, capsys):
    (tmp_path / "bad.json").write_text(json.dumps({"rungs": [{"bitrate_bps": 3e5}], "segment_duration_s": 4,
                                                   "segment_sizes_bytes": [[1000], [-5]]}))
    rc, _, err = run(capsys, "make", tmp_path / "o", "--movie", tmp_path / "bad.json")
    assert rc == 2 and "segment_sizes_bytes" in err
    (tmp_path / "small.json").write_text(json.dumps({"rungs": [{"bitrate_bps": 3e5}], "segment_duration_s": 4,
                                                     "segment_sizes_bytes": [[100000], [40]]}))
    rc, _, err = run(capsys, "make", tmp_path / "o", "--movie", tmp_path / "small.json")
    assert rc == 2 and "segment 1 of v0 is 40 bytes" in err
    (tmp_path / "codec.json").write_text(json.dumps({"rungs": [{"bitrate_bps": 3e5, "codec": "avc1.64"}],
                                                     "segment_duration_s": 4, "segment_sizes_bytes": [[100000]]}))
    rc, _, err = run(capsys, "make", tmp_path / "o", "--movie", tmp_path / "codec.json")
    assert rc == 2 and "rungs[0].codec" in err


def test_out_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    rc, _, err = run(capsys, "make", tmp_path / "f", "--ladder", "300k", "--duration", "4")
    assert rc == 2 and "not a directory" in err


def test_info(tmp_path, capsys):
    c = content_mod.synthetic((200e3, 400e3), duration_s=8, segment_duration_s=4)
    content_mod.save(c, tmp_path / "m.json")
    rc, out, _ = run(capsys, "info", tmp_path / "m.json")
    assert rc == 0 and json.loads(out)["segments"] == 2


def test_console_script(tmp_path):
    exe = Path(sys.executable).parent / "abrlab"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    r = subprocess.run([str(exe), "content", "make", str(tmp_path / "o"), "--ladder", "300k", "--duration", "4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert np.isclose(json.loads(r.stdout)["duration_s"], 4.0)
