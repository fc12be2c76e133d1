"""Policies by name and by file; `abrlab abr list`."""
from __future__ import annotations

import json

import numpy as np
import pytest

import abr
from abr_support import PENSIEVE, Sessions, abr_cache  # noqa: F401

REPO_EXAMPLE = str((__import__("pathlib").Path(__file__).resolve().parent.parent
                    / "examples" / "my_policy.py"))
EXPECTED = {"rb", "throughput", "festive", "bba", "bola", "bolae", "mpc", "robustmpc",
            "fastmpc", "dynamic", "fixed", "lowest", "highest", "random", "dashjs", "l2a", "lolp"}


def test_builtin_names():
    assert EXPECTED <= set(abr.names())


def test_user_policy_from_file():
    p = abr.get(f"{REPO_EXAMPLE}:MyPolicy", margin=0.5)
    assert isinstance(p, abr.Policy) and p.margin == 0.5
    assert abr.policy_class(f"{REPO_EXAMPLE}:MyPolicy") is type(p)  # imported once
    s = Sessions(np.random.default_rng(0), PENSIEVE, 3, masks=False)
    p.reset(3, PENSIEVE)
    for _ in range(4):
        rows = np.arange(3)
        q = p.select(s.observe(rows))
        assert q.shape == (3,)
        s.download(rows, q)


def test_user_policy_relative_path(monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(REPO_EXAMPLE).parent.parent)
    assert abr.get("examples/my_policy.py:MyPolicy").name == "MyPolicy"


def test_unknown_names_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="unknown ABR policy 'nosuch'.*robustmpc"):
        abr.get("nosuch")
    with pytest.raises(ValueError, match="not found"):
        abr.get(str(tmp_path / "missing.py") + ":X")
    good = tmp_path / "p.py"
    good.write_text("x = 1\n")
    with pytest.raises(ValueError, match="not an abr.Policy"):
        abr.get(f"{good}:x")
    bad = tmp_path / "broken.py"
    bad.write_text("def oops(:\n")
    with pytest.raises(ValueError, match="importing the policy file failed"):
        abr.get(f"{bad}:Anything")
    with pytest.raises(ValueError, match="unknown parameter"):
        abr.get("mpc", horizn=3)


def test_parameter_names_cannot_hide_methods():
    with pytest.raises(TypeError):
        class Bad(abr.Policy):  # noqa: F841
            PARAMS = (abr.Param("abandon", True, "bool", "shadows Policy.abandon"),)


def test_cli_abr_list_json(capsys):
    from player.cli.main import main

    assert main(["abr", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {e["name"]: e for e in data["policies"]}
    assert EXPECTED <= set(by_name)
    for name in EXPECTED:
        cls = abr.policy_class(name)
        assert [p["name"] for p in by_name[name]["params"]] == [p.name for p in cls.PARAMS]
        for entry, param in zip(by_name[name]["params"], cls.PARAMS):
            assert entry["default"] == param.default
            assert entry["unit"] and entry["doc"]
    assert {p["name"] for p in by_name["robustmpc"]["params"]} >= {"horizon", "error_window"}


def test_cli_abr_list_table_and_errors(capsys):
    from player.cli.main import main

    assert main(["abr", "list", "bola", f"{REPO_EXAMPLE}:MyPolicy"]) == 0
    out = capsys.readouterr().out
    assert "gp" in out and "margin" in out
    assert main(["abr", "list", "nosuch"]) == 2
    assert "unknown ABR policy" in capsys.readouterr().err


def test_every_param_is_documented():
    for name in abr.names():
        for p in abr.policy_class(name).PARAMS:
            assert p.unit and p.doc, (name, p.name)
