"""A policy's answer is checked at the interface (`abr.Policy.select`): out of range, not
integers, the wrong length or NaN is one line naming the policy, the session and the value;
a masked rung still falls to the highest allowed rung below."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import abr
from abr.errors import PolicyOutputError
from labdata import make_workload, run_cli
from player.cli.main import main


class Scripted(abr.Policy):
    """Returns whatever the test put in `answer` (an array, a list, anything)."""

    name = "scripted"
    answer: object = None

    def _select(self, obs):
        return self.answer


def observation(n: int = 3, rungs: int = 4, mask=None) -> abr.Observation:
    nan = np.full((n, 2), np.nan)
    return abr.Observation(
        sessions=np.arange(10, 10 + n), buffer_s=np.zeros(n), last_rung=np.full(n, -1), throughput_bps=nan,
        download_time_s=nan, next_sizes_bytes=np.ones((n, 1, rungs)), segments_left=np.full(n, 5),
        segment_index=np.full(n, 7), segment_duration_s=4.0, playing=np.zeros(n, bool),
        mask=np.ones((n, rungs), bool) if mask is None else mask, time_s=np.zeros(n), buffer_cap_s=np.full(n, 30.0))


@pytest.mark.parametrize("answer, value, session", [
    (np.array([0, 99, 1]), "rung 99", 11),
    (np.array([0, 1, -1]), "rung -1", 12),
    (np.array([1.0, 2.0, 3.0]), "1.0 (dtype float64", 10),
    (np.array([1.0, np.nan, 2.0]), "NaN (dtype float64", 11),
    (np.array([True, False, True]), "True (dtype bool", 10),
    ([0, None, 1], "None (dtype object", 11),
])
def test_a_bad_answer_names_policy_session_and_value(answer, value, session):
    p = Scripted()
    p.reset(20, abr.Ladder(np.array([1e6, 2e6, 3e6, 4e6]), 4.0))
    p.answer = answer
    with pytest.raises(PolicyOutputError) as info:
        p.select(observation())
    msg = str(info.value)
    assert "'scripted'" in msg and value in msg and f"session {session} " in msg and "segment 7" in msg
    assert "\n" not in msg and info.value.session == session
    assert isinstance(info.value, ValueError)


def test_the_wrong_number_of_rungs_is_refused():
    p = Scripted()
    p.reset(3, abr.Ladder(np.array([1e6, 2e6, 3e6, 4e6]), 4.0))
    p.answer = np.array([0, 1])
    with pytest.raises(PolicyOutputError, match=r"shape \(2,\) for 3 session"):
        p.select(observation())


def test_a_masked_rung_still_falls_to_the_highest_allowed_below():
    p = Scripted()
    p.reset(3, abr.Ladder(np.array([1e6, 2e6, 3e6, 4e6]), 4.0))
    mask = np.array([[True, False, True, False], [False, True, False, False], [False, False, True, True]])
    p.answer = np.array([3, 3, 1], dtype=np.int32)
    # row 0: 3 masked -> 2; row 1: 3 masked, 2 masked -> 1; row 2: 1 masked, nothing allowed below -> lowest allowed 2
    assert p.select(observation(mask=mask)).tolist() == [2, 1, 2]


POLICY_FILE = '''
import sys

import numpy as np
import abr

class Overshoot(abr.Policy):
    """Asks for a rung the ladder does not have from the third segment on."""
    def _select(self, obs):
        return np.where(obs.segment_index >= 2, 99, 0)
'''


def test_a_bad_policy_file_is_one_line_naming_the_trace(tmp_path, capsys):
    traces, movie = make_workload(tmp_path, n_traces=2)
    pol = tmp_path / "over.py"
    pol.write_text(POLICY_FILE)
    rc = main(["simulate", "--trace", traces[1], "--movie", movie, "--abr", f"{pol}:Overshoot"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert traces[1] in err and "'Overshoot'" in err and "rung 99" in err and "segment 2" in err
    r = run_cli([sys.executable, "-m", "player.cli", "compare", "--traces", *traces, "--movie", movie, "--abr",
                 f"{pol}:Overshoot", "--out", str(tmp_path / "out"), "--no-plots", "--executor", "inprocess"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "rung 99" in r.stderr and traces[0] in r.stderr


def test_play_with_a_policy_that_answers_nonsense_is_one_line_and_exit_2(tmp_path):
    """The headless player over the in-process edge: the same check, no traceback, no summary
    printed from a session that never decided (startup never happened)."""
    import subprocess
    pol = tmp_path / "bad.py"
    pol.write_text("import numpy as np\nfrom abr import Policy\n\n\nclass Bad(Policy):\n"
                   "    def _select(self, obs):\n        return np.full(obs.n, 99)\n")
    r = subprocess.run([sys.executable, "-m", "player.cli", "play", "--headless", "--abr", f"{pol}:Bad",
                        "--time-scale", "20"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("abrlab play: error: policy 'Bad' returned rung 99")
