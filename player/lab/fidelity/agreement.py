"""How closely our sessions agree with a peer's (Sabre, Pensieve, a player, dash.js), session
by session, and the share that meets the goals — shared by every `abrlab fidelity` peer.

A session agrees when its average bitrate is within `bitrate_rel` (5%) of the peer's and
its total rebuffering within `rebuffer_s` (0.5 s); a policy meets the goal on a trace set
when at least `share` (90%) of the sessions agree. A session the peer could not run counts
as not agreeing.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Goals:
    bitrate_rel: float = 0.05     # |ours / peer − 1| at most this
    rebuffer_s: float = 0.5       # |ours − peer| at most this many seconds
    share: float = 0.90           # of the sessions of a set, per policy


@dataclass
class SessionPair:
    """One session as we ran it and as the peer ran it."""

    trace_set: str
    trace: str
    policy: str
    ours_bitrate_bps: float
    ours_rebuffer_s: float
    peer_bitrate_bps: float = math.nan
    peer_rebuffer_s: float = math.nan
    error: str = ""               # the peer failed on this session (its last line)
    extra: dict = field(default_factory=dict)

    @property
    def bitrate_diff(self) -> float:
        """ours / peer − 1 (NaN when the peer has no result)."""
        if not (self.peer_bitrate_bps > 0):
            return math.nan
        return self.ours_bitrate_bps / self.peer_bitrate_bps - 1.0

    @property
    def rebuffer_diff_s(self) -> float:
        return self.ours_rebuffer_s - self.peer_rebuffer_s

    def agrees(self, goals: Goals) -> bool:
        d, r = self.bitrate_diff, self.rebuffer_diff_s
        return (not self.error and math.isfinite(d) and math.isfinite(r)
                and abs(d) <= goals.bitrate_rel + 1e-12 and abs(r) <= goals.rebuffer_s + 1e-12)

    def row(self, goals: Goals) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "extra"}
        out.update(bitrate_diff=self.bitrate_diff, rebuffer_diff_s=self.rebuffer_diff_s, ok=self.agrees(goals))
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Summary:
    """One policy on one trace set."""

    trace_set: str
    policy: str
    sessions: int
    agreeing: int
    failed: int
    mean_bitrate_diff: float      # mean of ours / peer − 1
    mean_abs_bitrate_diff: float
    mean_rebuffer_diff_s: float   # mean of ours − peer
    mean_abs_rebuffer_diff_s: float
    goal_share: float

    @property
    def share(self) -> float:
        return self.agreeing / self.sessions if self.sessions else 0.0

    @property
    def meets_goal(self) -> bool:
        return self.sessions > 0 and self.share >= self.goal_share - 1e-12

    def as_dict(self) -> dict:
        return {**asdict(self), "share": self.share, "meets_goal": self.meets_goal}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def summarise(pairs: Iterable[SessionPair], goals: Goals = Goals()) -> list[Summary]:
    """Per (trace set, policy), in the order first seen."""
    groups: dict[tuple[str, str], list[SessionPair]] = {}
    for p in pairs:
        groups.setdefault((p.trace_set, p.policy), []).append(p)
    out = []
    for (tset, policy), ps in groups.items():
        d = [p.bitrate_diff for p in ps]
        r = [p.rebuffer_diff_s for p in ps]
        out.append(Summary(
            trace_set=tset, policy=policy, sessions=len(ps), agreeing=sum(p.agrees(goals) for p in ps),
            failed=sum(bool(p.error) for p in ps), mean_bitrate_diff=_mean(d),
            mean_abs_bitrate_diff=_mean([abs(x) for x in d]), mean_rebuffer_diff_s=_mean(r),
            mean_abs_rebuffer_diff_s=_mean([abs(x) for x in r]), goal_share=goals.share))
    return out


def write_report(out_dir: Path, pairs: Sequence[SessionPair], summaries: Sequence[Summary], goals: Goals,
                 meta: dict) -> list[Path]:
    """`sessions.csv` (one row per session) and `summary.json` (goals, the run, per policy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [p.row(goals) for p in pairs]
    written = []
    if rows:
        written.append(write_rows(out_dir / "sessions.csv", rows))
    path = out_dir / "summary.json"
    with open(path, "w") as fh:
        json.dump({"goals": asdict(goals), "run": meta, "summary": [s.as_dict() for s in summaries]}, fh, indent=2)
    written.append(path)
    return written


def write_rows(path: Path, rows: Sequence[dict]) -> Path:
    """`rows` as CSV, the columns every row's keys in the order first seen."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path
