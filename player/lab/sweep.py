"""Sweeps: ABR policies × traces × devices × presets, run where the user says, resumable.

A sweep is cut into chunks of sessions that share policy, device and preset: each chunk is
one simulator batch, stepped in lockstep. The batch is large (up to 8,192 sessions, chosen
from the sessions to run, the workers and the memory: the simulator holds about 30 floats,
240 bytes, per segment per session at its peak — measured 200–224 with tracemalloc —, so
48 KB for a 199-segment movie, 390 MB for a batch of 8,192), because the per-step cost is
paid once per batch. What is written and resumed is smaller: the worker formats the
batch's rows as CSV text (columns at a time, no per-session dicts) in write units of 512
rows, and the main process appends and fsyncs each unit as it comes, so an interrupted
sweep loses nothing written and a re-run computes only the sessions that are missing.

A row's identity is (trace, policy, the policy's RESOLVED parameters — the preset's
defaults under the user's, as `Policy.describe()` says them, plus a fingerprint of the
source for a policy loaded from a file —, device, preset, movie) and its occurrence for a
trace repeated by `--repeat-to`: change a default, edit the file, and the old rows are not
reused. A report takes, per identity, the first rows in file order up to the number the
sweep asks for, so rows written twice never count twice.

The main process holds no per-session dicts: rows live in a `SessionTable` (60 MB for a
million sessions) and the summary is computed from its arrays.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from abr.errors import PolicyOutputError
from netem import content as content_mod, formats
from netem.errors import InputError, PlaybackError
from player.core import device as device_mod
from player.core.presets import get as get_preset, variant

from player.core.simulator import SessionSpec, simulate_batch
from player.lab.executors import deferred, run_all, stop_signals
from player.lab.lock import locked
from player.lab.results import LIVE_FIELDS, ResultsFile, csv_text, format_rows, write_text_safely
from player.lab.table import REPORT_COLUMNS, GroupLabel, SessionTable, SweepRows, occurrence

MAX_BATCH_ROWS = 8192        # beyond this a bigger batch steps no faster (bbb: 0.31 ms a session at 2,500, 0.26 at 5,000, 0.28 at 10,000)
MIN_BATCH_ROWS = 64
WRITE_UNIT_ROWS = 512        # rows appended and fsynced at a time (a fsync costs a few ms)
ROW_BYTES_PER_SEGMENT = 240  # the simulator's peak per session and segment (measured 200-224 bytes)
MEMORY_SHARE = 0.25          # of the available memory, for all workers' batches together
SPLIT_MIN_ROWS = 256         # a group this big or bigger is split evenly across the workers


@dataclass(frozen=True)
class Chunk:
    """Sessions one worker simulates in a single batch (all picklable, paths not objects).
    `identity` is the `abr_params` column (resolved parameters); `source_sha` the
    fingerprint of a file policy's source, checked by the worker; `write_rows` the rows per
    write unit."""

    traces: tuple[str, ...]
    movie: str
    abr: str
    abr_params: tuple[tuple[str, object], ...]
    device: str
    preset: str
    qoe: str
    identity: str = ""
    source_sha: str = ""
    write_rows: int = WRITE_UNIT_ROWS
    trace_format: str | None = None  # None: detected from each file's content
    live: tuple[tuple[str, object], ...] = ()  # live settings replacing the preset's (`presets.variant`)


@dataclass
class ChunkResult:
    """A chunk's rows: CSV text per write unit, and the report's columns as arrays."""

    units: list[bytes]
    unit_rows: list[int]
    values: dict[str, np.ndarray]


@dataclass(frozen=True)
class Group:
    """A policy × device × preset of a sweep, with the policy's resolved identity."""

    abr: str
    params: tuple[tuple[str, object], ...]
    device: str
    preset: str
    identity: str
    source_sha: str
    live: tuple[tuple[str, object], ...] = ()   # a live preset's settings given on the command line

    def key(self, trace: str, movie: str) -> tuple[str, ...]:
        return (trace, self.abr, self.identity, self.device, self.preset, movie)


@dataclass
class SweepStatus:
    """Where a run stands: sessions reused from sessions.csv, to compute, computed so far."""

    total: int
    reused: int
    to_compute: int
    computed: int = 0

    @property
    def saved(self) -> int:
        return self.reused + self.computed


@dataclass
class Sweep:
    traces: Sequence[str]
    movie: str
    abrs: Sequence[str]
    abr_params: dict[str, dict] = field(default_factory=dict)
    devices: Sequence[str] = ("none",)
    presets: Sequence[str] = ("default",)
    qoe: str = "linear"
    repeat_to: int | None = None   # repeat the trace list to this many sessions per policy
    trace_format: str | None = None  # the traces' format (`--from`); None: detected per file
    live: dict = field(default_factory=dict)  # live settings replacing the live presets' (`presets.variant`)

    def trace_list(self) -> list[str]:
        ts = list(self.traces)
        if self.repeat_to and ts:
            ts = [ts[i % len(ts)] for i in range(self.repeat_to)]
        return ts

    def sessions_per_group(self) -> int:
        return self.repeat_to if self.repeat_to and self.traces else len(self.traces)

    def total(self) -> int:
        return self.sessions_per_group() * len(self.abrs) * len(self.devices) * len(self.presets)


# -- inputs: loaded once per process (workers forked after the main loaded them inherit them) --
@lru_cache(maxsize=4096)
def _trace(path: str, fmt: str | None = None):
    return formats.load(path, fmt)


@lru_cache(maxsize=64)
def _movie(path: str):
    return content_mod.load(path)


@lru_cache(maxsize=64)
def _device(name: str):
    return None if name == "none" else device_mod.load(name)


def is_file_policy(spec: str) -> bool:
    return ":" in spec and spec.rsplit(":", 1)[0].endswith(".py")


def source_fingerprint(spec: str) -> str:
    """The first 16 hex digits of the SHA-256 of a file policy's source."""
    path = spec.rsplit(":", 1)[0]
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise InputError(f"{path}: cannot read the policy file ({exc.strerror or exc})") from None


def policy_identity(abr_name: str, params: dict, preset: str) -> tuple[str, str]:
    """(the `abr_params` text, the source fingerprint or ""): the policy's description with
    every parameter resolved under `preset`, and for a file policy its source's fingerprint."""
    desc = get_preset(preset).policy(abr_name, params).describe()
    if not is_file_policy(abr_name):
        return desc, ""
    sha = source_fingerprint(abr_name)
    return f"{desc} source=sha256:{sha}", sha


def prepare(sweep: Sweep) -> list[Group]:
    """Check and load everything a sweep needs — traces, movie, devices, policies with their
    parameters — raising `InputError` before anything is written; returns its groups."""
    if not sweep.traces:
        raise InputError("no traces to simulate")
    for t in dict.fromkeys(sweep.traces):
        _trace(t, sweep.trace_format)
    _movie(sweep.movie)
    for d in sweep.devices:
        _device(d)
    groups = []
    live = {p: live_settings(sweep, p) for p in sweep.presets}
    for abr_name in sweep.abrs:
        params = dict(sweep.abr_params.get(abr_name, {}))
        identities = {p: policy_identity(abr_name, params, p) for p in sweep.presets}
        for device in sweep.devices:
            for preset in sweep.presets:
                groups.append(Group(abr_name, tuple(sorted(params.items())), device, preset_label(preset, live[preset]),
                                    *identities[preset], live[preset]))
    return groups


def live_settings(sweep: Sweep, preset: str) -> tuple[tuple[str, object], ...]:
    """The sweep's live settings that apply to `preset` (none for a VoD preset), checked."""
    if get_preset(preset).live is None:
        return ()
    given = tuple(sorted((k, v) for k, v in sweep.live.items() if v is not None))
    variant(preset, **dict(given))
    return given


def preset_label(preset: str, live: tuple[tuple[str, object], ...]) -> str:
    """The `preset` column: the name, with the live settings given (`live-ll[duration_s=150]`),
    so rows of other settings are not reused."""
    return preset if not live else f"{preset}[{','.join(f'{k}={v}' for k, v in live)}]"


#: beside sessions.csv: each preset's fingerprint, as its rows were computed
PRESETS_FILE = "presets.json"


def preset_fingerprint(group: Group) -> str:
    """A digest of every setting of the preset a group runs (its live settings applied): a
    row's identity names the preset, so a change to the preset itself (abrlab's own, from one
    version to the next) must not let a results folder reuse rows computed under the old one."""
    name = group.preset.split("[", 1)[0]
    preset = variant(name, **dict(group.live)) if group.live else get_preset(name)
    return hashlib.sha256(repr(preset).encode()).hexdigest()[:16]


def check_presets(out_dir: Path, groups: Sequence[Group]) -> None:
    """Refuse to add to `out_dir` when a preset of this sweep has rows there computed under an
    earlier definition (recorded in PRESETS_FILE); record this sweep's presets otherwise.
    A folder from before the record existed is taken as current."""
    path = out_dir / PRESETS_FILE
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the presets' record ({exc}); remove it to start the record anew") from None
    if not isinstance(known, dict):
        raise InputError(f"{path}: not a JSON object; remove it to start the record anew")
    now = {g.preset: preset_fingerprint(g) for g in groups}
    changed = sorted(p for p, h in now.items() if known.get(p, h) != h)
    if changed:
        raise InputError(f"{out_dir}: its rows for preset {', '.join(changed)} were computed under an earlier "
                         "definition of that preset (abrlab has changed it since); give another --out, or remove "
                         "the folder to compute them again")
    if any(known.get(p) != h for p, h in now.items()):
        write_text_safely(path, json.dumps({**known, **now}, indent=1, sort_keys=True) + "\n")


def preset_of(chunk: Chunk):
    """The preset a chunk runs (its live settings applied)."""
    name = chunk.preset.split("[", 1)[0]
    return variant(name, **dict(chunk.live)) if chunk.live else name


# -- the worker side ------------------------------------------------------------------------------
def texts(values: np.ndarray) -> list[str]:
    """A column as the csv module writes its Python values: `repr` of floats (shortest
    round trip), decimal ints."""
    return list(map(repr, np.asarray(values).tolist()))


def chosen_texts(chosen: np.ndarray) -> list[str]:
    """Each row's rungs joined by spaces (vectorised when every rung is one digit)."""
    n, k = chosen.shape
    if n == 0:
        return []
    if k and 0 <= chosen.min() and chosen.max() <= 9:
        buf = np.full((n, 2 * k), ord(" "), dtype=np.uint8)
        buf[:, 0::2] = chosen + ord("0")
        width = 2 * k - 1
        text = buf[:, :width].tobytes().decode("ascii")
        return [text[i * width:(i + 1) * width] for i in range(n)]
    names = [str(i) for i in range(int(chosen.max()) + 1)]
    return [" ".join([names[x] for x in row]) for row in chosen.tolist()]


def run_chunk(chunk: Chunk) -> ChunkResult:
    """Simulate one chunk: its CSV rows in write units and its report columns (in a worker)."""
    if chunk.source_sha and source_fingerprint(chunk.abr) != chunk.source_sha:
        raise InputError(f"{chunk.abr.rsplit(':', 1)[0]}: the policy file changed during the sweep; "
                         "run the command again (rows of the new version are computed afresh)")
    movie = _movie(chunk.movie)
    device = _device(chunk.device)
    params = dict(chunk.abr_params)
    preset = preset_of(chunk)
    specs = [SessionSpec(_trace(t, chunk.trace_format), movie, chunk.abr, params, device, preset)
             for t in chunk.traces]
    try:
        batch = simulate_batch(specs, keep=())  # one batch: the chunk shares policy, preset and content; metrics only
    except PolicyOutputError as exc:
        where = chunk.traces[exc.session] if exc.session is not None and 0 <= exc.session < len(specs) else None
        raise PlaybackError(f"{exc} [preset {chunk.preset}, device {chunk.device}]", where=where) from None
    m, chosen = batch.metrics, batch.chosen
    model = chunk.qoe
    quoted = {t: csv_text(t) for t in dict.fromkeys(chunk.traces)}
    columns = [
        [quoted[t] for t in chunk.traces], [csv_text(chunk.abr)], [csv_text(chunk.identity)],
        [csv_text(chunk.device)], [csv_text(chunk.preset)], [csv_text(chunk.movie)],
        texts(m["segments"]), texts(m["avg_bitrate_bps"]), texts(m["time_avg_bitrate_bps"]), texts(m["utility"]),
        texts(m["rebuffer_s"]), texts(m["rebuffer_count"]), texts(m["rebuffer_ratio"]), texts(m["startup_s"]),
        texts(m["switches"]), texts(m["switch_magnitude_bps"]), texts(m["bytes"]), texts(m["session_s"]),
        texts(m[f"qoe_{model}"].astype(np.float64)), [csv_text(model)],
        texts(m[f"qoe_{model}_utility"].astype(np.float64)),
        texts(m[f"qoe_{model}_rebuffer_penalty"].astype(np.float64)),
        texts(m[f"qoe_{model}_smoothness_penalty"].astype(np.float64)),
        texts(m["qoe_linear"].astype(np.float64)), texts(m["qoe_log"].astype(np.float64)),
        texts(m["qoe_hd"].astype(np.float64)), texts(m["qoe_twitch"].astype(np.float64)),
        *[texts(live_column(m, name)) for name in LIVE_FIELDS], chosen_texts(chosen),
    ]
    n = len(specs)
    step = max(1, chunk.write_rows)
    units, unit_rows = [], []
    for a in range(0, n, step):
        b = min(n, a + step)
        units.append(format_rows([c[a:b] if len(c) == n else c for c in columns]))
        unit_rows.append(b - a)
    values = {"qoe": np.asarray(m[f"qoe_{model}"], dtype=np.float64)}
    for name in REPORT_COLUMNS:
        values[name] = live_column(m, name)
    return ChunkResult(units, unit_rows, values)


def session_segments(sweep: Sweep, groups: list[Group]) -> int:
    """The most segments a session of the sweep plays: the movie's, or a live session's over
    its duration (with its live delay's worth more)."""
    movie = _movie(sweep.movie)
    segments = movie.n_segments
    d = float(movie.segment_durations_s[0])
    for g in groups:
        live = variant(g.preset.split("[", 1)[0], **dict(g.live)).live
        if live is not None:
            segments = max(segments, math.ceil(live.duration_s / d) + 10)
    return segments


def live_column(metrics: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A metric as float64; a live metric of VoD sessions is nan."""
    if name not in metrics:
        return np.full(metrics["segments"].shape, np.nan)
    return np.asarray(metrics[name], dtype=np.float64)


# -- planning -------------------------------------------------------------------------------------
def available_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 2 << 30


def batch_rows(segments: int, workers: int, memory_bytes: int | None = None) -> int:
    """The most sessions one batch should hold: a share of the memory over the workers,
    divided by what a session costs the simulator (ROW_BYTES_PER_SEGMENT per segment)."""
    memory = available_memory_bytes() if memory_bytes is None else memory_bytes
    per_row = max(1, segments) * ROW_BYTES_PER_SEGMENT
    rows = int(memory * MEMORY_SHARE / max(1, workers) / per_row)
    return max(MIN_BATCH_ROWS, min(MAX_BATCH_ROWS, rows))


def split_sizes(sessions: int, cap: int, workers: int) -> list[int]:
    """Sizes of the batches for `sessions` of one group: as few as `cap` allows, a multiple
    of `workers` when the group is big enough to share, as equal as possible."""
    if sessions <= 0:
        return []
    pieces = math.ceil(sessions / cap)
    if workers > 1 and sessions >= SPLIT_MIN_ROWS * workers:
        pieces = math.ceil(pieces / workers) * workers
    base, extra = divmod(sessions, pieces)
    return [base + (1 if i < extra else 0) for i in range(pieces)]


def missing_chunks(sweep: Sweep, groups: list[Group], table: SessionTable, chunk_size: int | None = None,
                   workers: int = 1) -> list[Chunk]:
    """Chunks for every (trace occurrence × group) not yet in `table`. `chunk_size` fixes the
    batch size; by default it is chosen from the sessions, the workers and the memory."""
    traces = list(dict.fromkeys(sweep.traces))
    index = {t: i for i, t in enumerate(traces)}
    order = np.array([index[t] for t in sweep.trace_list()], dtype=np.int64)
    occ = occurrence(order)
    counts = table.counts()
    todo_by_group = []
    for g in groups:
        have = np.array([counts.get(g.key(t, sweep.movie), 0) for t in traces], dtype=np.int64)
        todo_by_group.append((g, order[occ >= have[order]]))
    cap = chunk_size or batch_rows(session_segments(sweep, groups), workers)
    write_rows = min(WRITE_UNIT_ROWS, cap)
    chunks = []
    for g, todo in todo_by_group:
        sizes = [cap] * math.ceil(todo.size / cap) if chunk_size else split_sizes(int(todo.size), cap, workers)
        start = 0
        for size in sizes:
            part = todo[start:start + size]
            start += size
            if part.size:
                chunks.append(Chunk(tuple(traces[i] for i in part), sweep.movie, g.abr, g.params, g.device,
                                    g.preset, sweep.qoe, g.identity, g.source_sha, write_rows, sweep.trace_format,
                                    g.live))
    # the biggest first: a free worker takes the next, so the last ones are short
    return sorted(chunks, key=lambda c: -len(c.traces))


def sweep_rows(sweep: Sweep, groups: list[Group], table: SessionTable) -> SweepRows:
    """The rows of `table` this sweep reports: per identity, the first ones in file order up
    to the number of times the sweep lists that trace (duplicates never count twice)."""
    traces = list(dict.fromkeys(sweep.traces))
    t_index = {t: i for i, t in enumerate(traces)}
    want = np.bincount([t_index[t] for t in sweep.trace_list()], minlength=len(traces))
    g_index = {g.key("", sweep.movie)[1:]: i for i, g in enumerate(groups)}
    key_group = np.array([g_index.get(k[1:], -1) for k in table.keys] or [0], dtype=np.int64)
    key_trace = np.array([t_index.get(k[0], -1) for k in table.keys] or [0], dtype=np.int64)
    codes = table.codes()
    g, t = key_group[codes], key_trace[codes]
    occ = occurrence(codes)
    keep = (g >= 0) & (t >= 0)
    keep &= occ < np.where(t >= 0, want[np.maximum(t, 0)], 0)
    labels = [GroupLabel(x.abr, x.identity, x.device, x.preset) for x in groups]
    return SweepRows(sweep.qoe, labels, g[keep], t[keep], occ[keep],
                     {c: table.values(c)[keep] for c in table.columns})


def workers_for(executor: str, jobs: int | None) -> int:
    if executor == "inprocess":
        return 1
    if executor == "process":
        return jobs or os.cpu_count() or 1
    return jobs or 4


def run_sweep(sweep: Sweep, out_dir: Path, executor: str = "process", jobs: int | None = None,
              on_progress: Callable[[SweepStatus], None] | None = None, chunk_size: int | None = None,
              warn: Callable[[str], None] | None = None, lock: bool = True,
              groups: list[Group] | None = None) -> SweepRows:
    """Run what is missing from `out_dir/sessions.csv` and return the sweep's rows.

    Validates every input first (`prepare`), then locks `out_dir` (unless the caller holds
    the lock: `lock=False`). SIGINT/SIGTERM stop the run with `executors.Stopped` after every
    finished chunk is saved; `on_progress` has said how many sessions are saved."""
    groups = prepare(sweep) if groups is None else groups
    out_dir = Path(out_dir)
    if lock:
        out_dir.mkdir(parents=True, exist_ok=True)
        with locked(out_dir):
            return run_sweep(sweep, out_dir, executor, jobs, on_progress, chunk_size, warn, False, groups)
    check_presets(out_dir, groups)
    results = ResultsFile(out_dir / "sessions.csv")
    table = SessionTable(sweep.qoe)
    results.load(table.add_fields, warn)
    write_text_safely(out_dir / "sweep.json", json.dumps(asdict(sweep), indent=1, default=list) + "\n")
    workers = workers_for(executor, jobs)
    chunks = missing_chunks(sweep, groups, table, chunk_size, workers)
    total = sweep.total()
    to_compute = sum(len(c.traces) for c in chunks)
    status = SweepStatus(total, total - to_compute, to_compute)
    if on_progress:
        on_progress(status)

    def save(chunk: Chunk, result: ChunkResult) -> None:
        keys: dict[str, int] = {}
        ids = [keys.get(t) if t in keys else keys.setdefault(t, table.key_id(
            (t, chunk.abr, chunk.identity, chunk.device, chunk.preset, chunk.movie))) for t in chunk.traces]
        start = 0
        for data, n in zip(result.units, result.unit_rows):
            with deferred():
                results.append(data)
                table.add(ids[start:start + n], {c: v[start:start + n] for c, v in result.values.items()})
                status.computed += n
            start += n
            if on_progress:
                on_progress(status)

    with stop_signals():
        run_all(run_chunk, chunks, save, executor, jobs)
    return sweep_rows(sweep, groups, table)
