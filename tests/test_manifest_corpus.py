"""Every real manifest in ../shared/mpd either becomes a model or a one-line error.

Skips when ../shared is absent. Run directly for the summary table:

    .venv/bin/python tests/test_manifest_corpus.py
"""
from __future__ import annotations

import csv
import json
import sys
import traceback
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from player.cli.commands.mpd import render_tree  # noqa: E402
from player.dash.availability import available_segment_numbers  # noqa: E402
from player.dash.errors import ManifestError  # noqa: E402
from player.dash.loading import load_manifest  # noqa: E402

PREFIXES = ("unsupported: ", "invalid: ", "unavailable: ")


def classify(path: Path) -> tuple[str, str]:
    """('parsed' | 'unsupported' | 'invalid' | 'unavailable' | 'crashed', detail); the
    detail of a parsed manifest says whether it is live."""
    try:
        pres = load_manifest(path)
        # Exercise the model the way the player and `mpd info` would.
        json.dumps(pres.to_dict(), allow_nan=False)
        render_tree(pres)
        for _, _, rep in pres.representations():
            idx = rep.segment_index
            if idx is not None and len(idx):
                idx.init, idx[0], idx[len(idx) - 1], idx.duration_s  # noqa: B018
            if rep.live_template is not None and pres.availability_start_time_s is not None:
                window = available_segment_numbers(
                    rep.live_template, pres.availability_start_time_s + 3600.0,
                    availability_start_time_s=pres.availability_start_time_s,
                    time_shift_buffer_depth_s=pres.time_shift_buffer_depth_s)
                if window is not None:
                    rep.live_template.segment(window[0])
        kind = "live" if pres.is_live else "static"
        return "parsed", f"{kind}, {sum(1 for _ in pres.representations())} representations"
    except ManifestError as exc:
        msg = str(exc)
        return msg.split(":", 1)[0], msg
    except Exception:  # noqa: BLE001 - this is what the test counts
        return "crashed", traceback.format_exc(limit=3).strip().splitlines()[-1]


def run_corpus(mpd_dir: Path) -> tuple[Counter, list[tuple[str, str, str]]]:
    with open(mpd_dir / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    results = [(r["file"], *classify(mpd_dir / r["file"])) for r in rows]
    return Counter(cat for _, cat, _ in results), results


def summary(counts: Counter, results: list[tuple[str, str, str]]) -> str:
    live = sum(1 for _, cat, detail in results if cat == "parsed" and detail.startswith("live"))
    lines = [f"manifests: {len(results)}  " + "  ".join(
        f"{k}: {counts.get(k, 0)}" for k in ("parsed", "unsupported", "invalid", "unavailable", "crashed"))
        + f"  (live among parsed: {live})"]
    reasons = Counter(detail.split(" (at ")[0] for _, cat, detail in results if cat != "parsed")
    for reason, n in reasons.most_common():
        lines.append(f"  {n:3d} x {reason}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def corpus(shared_dir):
    mpd_dir = shared_dir / "mpd"
    if not (mpd_dir / "index.csv").is_file():
        pytest.skip("../shared/mpd/index.csv is absent")
    return mpd_dir, *run_corpus(mpd_dir)


def test_corpus_never_crashes(corpus, record_property):
    _, counts, results = corpus
    text = summary(counts, results)
    print("\n" + text)
    record_property("mpd_corpus_summary", text)
    crashed = [(f, d) for f, cat, d in results if cat == "crashed"]
    assert crashed == []
    for f, cat, detail in results:
        if cat != "parsed":
            assert detail.startswith(PREFIXES) and "\n" not in detail, (f, detail)
    assert counts["parsed"] > len(results) // 2


def test_corpus_dynamic_manifests_parse_into_a_live_model(corpus):
    mpd_dir, _, results = corpus
    with open(mpd_dir / "index.csv", newline="") as fh:
        dynamic = {r["file"] for r in csv.DictReader(fh) if r["type"] == "dynamic"}
    assert dynamic
    by_file = {f: (cat, d) for f, cat, d in results}
    refused = {f: by_file[f][1] for f in dynamic if by_file[f][0] != "parsed"}
    # Only what is refused before the type matters (xlink) may stay refused.
    assert all(d.startswith("unsupported: remote elements") for d in refused.values()), refused
    for f in dynamic - set(refused):
        assert by_file[f][1].startswith("live, "), f
    assert len(dynamic) - len(refused) >= 28


def test_corpus_live_timing_by_hand(corpus):
    # shaka-player test asset: AST 2021-10-28T07:36:27.755Z = 1635406587.755 s (date -d ... +%s),
    # publishTime 07:36:29.744Z = AST + 1.989 s; PT2S / PT10.0S / PT2S / PT2.0S; Period@start PT10.0S.
    pres = _one(corpus[0], "shaka-project__shaka-player/test__test__assets__3675__dash_0.mpd")
    assert pres.is_live and pres.availability_start_time_s == 1635406587.755
    assert abs(pres.publish_time_s - pres.availability_start_time_s - 1.989) < 1e-6
    assert (pres.minimum_update_period_s, pres.time_shift_buffer_depth_s,
            pres.suggested_presentation_delay_s, pres.max_segment_duration_s) == (2.0, 10.0, 2.0, 2.0)
    assert pres.periods[0].start_s == 10.0
    rep = pres.periods[0].adaptation_sets[0].representations[0]
    # <S t="0" d="30720"/> at timescale 15360: one 2 s segment, numbered from 1.
    assert rep.segment_count == 1 and rep.segment_index[0].duration_s == 2.0
    assert rep.segment_index[0].url.endswith("chunk-stream0-00001.m4s")
    # dash.js's BasicManifest: type=dynamic, $Number$ from 0, 360000 / 90000 = 4 s: a live template.
    basic = _one(corpus[0], "Dash-Industry-Forum__dash.js/"
                            "build__test__js__utils__hostedFiles__dynamic__BasicManifest.mpd")
    t = basic.periods[0].adaptation_sets[0].representations[0].live_template
    assert (t.start_number, t.duration_s, t.period_end_s) == (0, 4.0, None)
    assert t.segment(0).url.endswith("/video1/0.m4s")


def _one(mpd_dir: Path, name: str):
    path = mpd_dir / name
    if not path.is_file():
        pytest.skip(f"{name} is absent")
    return load_manifest(path)


def test_corpus_laurl_sample(corpus):
    # 734 s at 4 s segments (96 / 24): ceil(183.5) = 184; audio 95232 / 24000 s: ceil(184.98) = 185.
    pres = _one(corpus[0], "Dash-Industry-Forum__dash.js/Backend__dash.js__samples__drm__mpds__laurl.mpd")
    video, audio, text = pres.periods[0].adaptation_sets
    assert [r.segment_count for r in video.representations] == [184] * 5
    assert audio.representations[0].segment_count == 185
    assert text.ignored
    first = video.representations[0].segment_index[0]
    assert first.url == "https://media.axprod.net/TestVectors/v7-MultiDRM-SingleKey/1/0001.m4s"
    lic = {cp.system_name: cp.license_url for cp in video.protection if cp.license_url}
    assert lic == {"playready": "https://drm-playready-licensing.axtest.net/AcquireLicense",
                   "widevine": "https://drm-widevine-licensing.axtest.net/AcquireLicense"}
    assert video.representations[0].default_kid == "9eb4050d-e44b-4802-932e-27d75083e266"


def test_corpus_undeclared_prefix_and_sidx(corpus):
    pres = _one(corpus[0], "shaka-project__shaka-player/assets__oops_cenc_pssh.mpd")
    assert any("cenc" in n for n in pres.notes)
    rep = pres.periods[0].adaptation_sets[0].representations[0]
    assert rep.needs_sidx and rep.pending_sidx.index_range == (1603, 1934)
    assert rep.protection[0].pssh.startswith("AAAANHBzc2g")


if __name__ == "__main__":  # pragma: no cover
    here = Path(__file__).resolve().parent.parent.parent / "shared" / "mpd"
    counts, results = run_corpus(here)
    for f, cat, detail in results:
        print(f"{cat:12s} {f}  {detail if cat != 'parsed' else ''}")
    print(summary(counts, results))
    sys.exit(1 if counts.get("crashed") else 0)
