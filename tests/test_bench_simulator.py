"""The simulator bench's derived figures, by hand-computed cases (the bench itself times
subprocesses and is run by `abrlab bench`, never by the tests)."""
from __future__ import annotations

import pytest

from player.lab.benches.simulator import amdahl_bound, against_goals


def test_amdahl_bound_shares_only_the_simulation():
    # 1.5 s on one core, 1.2 s of it simulating: on two cores at best 0.3 + 0.6 = 0.9 s
    assert amdahl_bound(1.5, 1.2) == pytest.approx(1.5 / 0.9)
    # all simulation: the bound is the number of workers
    assert amdahl_bound(2.0, 2.0, workers=4) == pytest.approx(4.0)
    # a simulation phase reported longer than the command (rounding) shares nothing twice
    assert amdahl_bound(1.0, 1.05) == pytest.approx(1.0 / 0.525)


def test_against_goals_marks_each_scaling_figure_and_names_its_bound():
    out = {"goals": {"marginal_ms_per_session": 0.15, "end_to_end_1000_s": 0.9, "robustmpc_sessions_per_s": 2000,
                     "two_cores_speedup_10000": 1.8},
           "end_to_end": {}, "one_core": {},
           "scaling": {"bola (sabre)": {"speedup_end_to_end": 1.49, "speedup_simulation": 1.85,
                                        "amdahl_bound_end_to_end": 1.65}}}
    rows = against_goals(out, 1000, 5000, 10000)
    whole, sim = rows
    assert "Amdahl's bound 1.65" in whole["figure"] and whole["met"] is False
    assert sim["value"] == 1.85 and sim["met"] is True
