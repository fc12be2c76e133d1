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

from player.dash.errors import ManifestError  # noqa: E402
from player.dash.loading import load_manifest  # noqa: E402

PREFIXES = ("unsupported: ", "invalid: ", "unavailable: ")


def classify(path: Path) -> tuple[str, str]:
    """('parsed' | 'unsupported' | 'invalid' | 'unavailable' | 'crashed', detail)."""
    try:
        pres = load_manifest(path)
        # Exercise the model the way the player and `mpd info` would.
        json.dumps(pres.to_dict())
        for _, _, rep in pres.representations():
            idx = rep.segment_index
            if idx is not None and len(idx):
                idx.init, idx[0], idx[len(idx) - 1], idx.duration_s  # noqa: B018
        pres.require_static()
        return "parsed", f"{sum(1 for _ in pres.representations())} representations"
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
    lines = [f"manifests: {len(results)}  " + "  ".join(
        f"{k}: {counts.get(k, 0)}" for k in ("parsed", "unsupported", "invalid", "unavailable", "crashed"))]
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


def test_corpus_dynamic_manifests_parse_into_a_model(corpus):
    mpd_dir, _, results = corpus
    dynamic = [f for f, cat, d in results if "type=dynamic" in d]
    assert dynamic
    for f in dynamic:
        try:
            pres = load_manifest(mpd_dir / f)
        except ManifestError as exc:   # e.g. xlink: refused before the type matters
            assert str(exc).startswith("unsupported: ")
            continue
        assert pres.is_live


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
