"""`abrlab fidelity pensieve` on a fake Pensieve test/ folder written here (plumbing only:
the real comparison with hongzimao/pensieve is measured in the README).

The fake bb.py is Python 2 (print statements, integer division, xrange, a log opened 'wb'),
reads what the tool laid out (cooked traces, video_size_N) through a fake fixed_env.py and
load_trace.py, and writes for each trace the log Pensieve's bb.py would write for the
session worked by hand in tests/test_pensieve_semantics.py, except for traces whose name
starts with "other", where chunk 3 goes to rung 2 after a 1 s stall.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from netem import formats
from netem.content import Content, rungs_from_bitrates, save as save_content
from netem.errors import UnavailableError
from netem.trace import constant
from player.cli.main import main
from player.lab.fidelity import pensieve
from player.lab.fidelity.pensieve import PensieveTest, compare, summarise, write_report

LADDER = [300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3]
SIZES = [920_000 + 1_000_000 * q for q in range(6)]   # rung q takes q + 1 s on 8 Mbit/s of payload

FIXED_ENV = '''
import numpy as np

MILLISECONDS_IN_SECOND = 1000.0
VIDEO_CHUNCK_LEN = 4000.0  # millisec, every time add this amount to buffer
BITRATE_LEVELS = 6
TOTAL_VIDEO_CHUNCK = 3
VIDEO_SIZE_FILE = './video_size_'


class Environment:
    def __init__(self, all_cooked_time, all_cooked_bw):
        self.video_size = {}
        for bitrate in xrange(BITRATE_LEVELS):
            self.video_size[bitrate] = []
            with open(VIDEO_SIZE_FILE + str(bitrate)) as f:
                for line in f:
                    self.video_size[bitrate].append(int(line.split()[0]))
'''

LOAD_TRACE = '''
import os

COOKED_TRACE_FOLDER = './cooked_traces/'


def load_trace(cooked_trace_folder=COOKED_TRACE_FOLDER):
    names = sorted(os.listdir(cooked_trace_folder))
    times, bws = [], []
    for name in names:
        t, b = [], []
        with open(cooked_trace_folder + name, 'rb') as f:
            for line in f:
                parse = line.split()
                t.append(float(parse[0]))
                b.append(float(parse[1]))
        times.append(t)
        bws.append(b)
    return times, bws, names
'''

BB = '''
import numpy as np
import fixed_env as env
import load_trace

VIDEO_BIT_RATE = [300,750,1200,1850,2850,4300]  # Kbps
M_IN_K = 1000.0
LOG_FILE = './results/log_sim_bb'
# the session of tests/test_pensieve_semantics.py: rungs 1, 0, 1; downloads 2, 1, 2 s;
# buffers 4, 7, 9 s; a 2 s stall on chunk 1
BUFFERS = [4.0, 7.0, 9.0]
STALLS = [2.0, 0.0, 0.0]


def main():
    times, bws, names = load_trace.load_trace()
    e = env.Environment(all_cooked_time=times, all_cooked_bw=bws)
    for name, bw in zip(names, bws):
        assert abs(bw[1] * 0.95 - 8.0) < 1e-9, bw   # 8 Mbit/s of payload, in Mbit/s
        last = 7 / 2 - 2                             # Python 2: 1 (Python 3 would say 1.5)
        other = name.startswith('other')
        rungs = [1, 0, last if not other else 2]
        stalls = STALLS if not other else [2.0, 0.0, 1.0]
        log = open(LOG_FILE + '_' + name, 'wb')
        prev = 1
        for k in xrange(env.TOTAL_VIDEO_CHUNCK):
            q = rungs[k]
            delay = 1000.0 * (q + 1)
            reward = VIDEO_BIT_RATE[q] / M_IN_K - 4.3 * stalls[k] - abs(VIDEO_BIT_RATE[q] - VIDEO_BIT_RATE[prev]) / M_IN_K
            prev = q
            log.write(str(k) + '\\t' + str(VIDEO_BIT_RATE[q]) + '\\t' + str(BUFFERS[k]) + '\\t' + str(stalls[k]) +
                      '\\t' + str(e.video_size[q][k]) + '\\t' + str(delay) + '\\t' + str(reward) + '\\n')
        log.write('\\n')
        log.close()
        print "video count", names.index(name)


if __name__ == '__main__':
    main()
'''


def fake_pensieve(tmp_path, bb: str = BB):
    folder = tmp_path / "pensieve" / "test"
    folder.mkdir(parents=True)
    (folder / "fixed_env.py").write_text(textwrap.dedent(FIXED_ENV))
    (folder / "load_trace.py").write_text(textwrap.dedent(LOAD_TRACE))
    (folder / "bb.py").write_text(textwrap.dedent(bb))
    return folder


def inputs(tmp_path, bitrates=LADDER):
    traces = tmp_path / "set-a"
    traces.mkdir()
    for name in ("same.csv", "other.csv"):
        formats.save(constant(8e6 / 0.95, 1000.0), traces / name, "csv")
    movie = tmp_path / "movie.json"
    save_content(Content(rungs_from_bitrates(np.array(bitrates)), np.full(4, 359408 / 90000),
                         np.tile(SIZES, (4, 1)), name="fake"), movie)
    return traces, movie


def test_compare_with_a_fake_pensieve(tmp_path):
    test = PensieveTest.find(fake_pensieve(tmp_path).parent)   # a checkout: its test/ is found
    assert (test.chunks, test.chunk_s, test.log_prefix) == (3, 4.0, "./results/log_sim_bb_")
    traces, movie = inputs(tmp_path)
    result = compare(test, [traces], movie)
    assert result.notes == []    # 359408/90000 s segments count as Pensieve's 4 s chunks
    pairs = {p.trace: p for p in result.pairs}
    same, other = pairs["same.csv"], pairs["other.csv"]
    # chunks 2..3: 0.3 + 0.75 − 0.45 − 0.45
    assert same.peer_qoe == pytest.approx(0.15) and same.ours_qoe == pytest.approx(0.15)
    assert same.agrees() and same.first_divergence == -1 and not same.error
    # Pensieve's third chunk at rung 2 after a 1 s stall: 0.3 + 1.2 − 0.45 − 0.9 − 4.3
    assert other.peer_qoe == pytest.approx(0.15 - 4.3)
    assert not other.agrees() and other.first_divergence == 2
    [s] = summarise(result.pairs)
    assert (s.trace_set, s.sessions, s.agreeing, s.identical, s.failed) == ("set-a", 2, 1, 1, 0)
    assert not s.meets_goal
    written = write_report(tmp_path / "out", result, [s], {"peer": "pensieve"})
    assert [p.name for p in written] == ["sessions.csv", "summary.json"]
    rows = list(csv.DictReader(open(tmp_path / "out" / "sessions.csv")))
    assert {r["trace"]: r["ok"] for r in rows} == {"same.csv": "True", "other.csv": "False"}
    chunks = [json.loads(x) for x in (tmp_path / "out" / "logs" / "set-a" / "bba" / "same.csv.jsonl").open()]
    assert [c["peer_size_bytes"] for c in chunks] == [SIZES[1], SIZES[0], SIZES[1]]   # read from video_size_N
    assert [c["ours_buffer_s"] for c in chunks] == pytest.approx([4.0, 7.0, 9.0])


def test_cli_runs_the_fake(tmp_path, capsys):
    folder = fake_pensieve(tmp_path)
    traces, movie = inputs(tmp_path)
    rc = main(["fidelity", "pensieve", "--pensieve", str(folder / "bb.py"), "--traces", str(traces),
               "--movie", str(movie), "--sessions", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "set-a" in out and "50.0%" in out and "NOT met" in out
    assert (tmp_path / "out" / "summary.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--pensieve", "{tmp}/nowhere"], "no such file or folder"),
    (["--pensieve", "{tmp}"], "no bb.py"),
    (["--pensieve", "{fake}", "--traces", "{tmp}/no-traces"], "no such file or folder"),
    (["--pensieve", "{fake}"], "no --movie given"),
    (["--pensieve", "{fake}", "--python", "{tmp}/no-python"], "cannot run"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    fake = fake_pensieve(tmp_path)
    traces, movie = inputs(tmp_path)
    args = [a.format(tmp=tmp_path, fake=fake) for a in argv]
    if "--traces" not in args:
        args += ["--traces", str(traces)]
    if "--movie" not in args and message != "no --movie given":
        args += ["--movie", str(movie)]
    rc = main(["fidelity", "pensieve", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_movie_with_another_ladder_is_refused(tmp_path, capsys):
    fake = fake_pensieve(tmp_path)
    traces, movie = inputs(tmp_path, bitrates=[200e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3])
    rc = main(["fidelity", "pensieve", "--pensieve", str(fake), "--traces", str(traces), "--movie", str(movie)])
    assert rc == 2 and "not Pensieve's VIDEO_BIT_RATE" in capsys.readouterr().err


def test_a_movie_of_other_chunk_lengths_gets_a_note(tmp_path):
    test = PensieveTest.find(fake_pensieve(tmp_path))
    traces, _ = inputs(tmp_path)
    movie = tmp_path / "two-second.json"
    save_content(Content(rungs_from_bitrates(np.array(LADDER)), np.full(4, 2.0), np.tile(SIZES, (4, 1))), movie)
    notes = compare(test, [traces], movie).notes
    assert len(notes) == 1 and "VIDEO_CHUNCK_LEN = 4 s" in notes[0] and "[2.0] s" in notes[0]


def test_a_pensieve_that_fails_everywhere_is_unavailable(tmp_path):
    fake = fake_pensieve(tmp_path, bb=BB.replace("def main():\n", "def main():\n    raise SystemExit('broken on purpose')\n"))
    traces, movie = inputs(tmp_path)
    with pytest.raises(UnavailableError, match="broken on purpose"):
        compare(PensieveTest.find(fake), [traces], movie)


def test_shim_gives_python2_meaning_and_leaves_the_file_alone(tmp_path):
    script = tmp_path / "legacy.py"
    source = textwrap.dedent('''
        import numpy as np
        log = open('out.txt', 'wb')
        log.write('a' + '\\t' + str(7 / 2) + '\\n')
        x = 9
        x /= 2
        print "halves", 7 / 2, 7.0 / 2, x, int(np.int64(7) / np.int64(2)), (np.arange(4) / 2).tolist()
        if x: print "same line",
        print
        for i in xrange(2): print i
        log.close()
    ''')
    script.write_text(source)
    done = subprocess.run([sys.executable, str(pensieve.SHIM), str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["halves 3 3.5 4 3 [0, 0, 1, 1]", "same line ", "0", "1"]
    assert (tmp_path / "out.txt").read_bytes() == b"a\t3\n"
    assert script.read_text() == source
