"""The catch-up laws by hand-computed cases (player.core.catchup), and the buffer at a rate."""
from __future__ import annotations

import math

import numpy as np
import pytest

from netem.errors import InputError
from player.core import catchup
from player.core.buffer import BufferState
from player.core.catchup import CatchupInput, ServiceBounds

#: what our origin's ServiceDescription says for a 3.5 s target (min ¾, max 2×, rates 0.96-1.04)
ORIGIN = ServiceBounds(3.5, 2.625, 7.0, 0.96, 1.04)


def one(latency, target=3.5, buffer=2.0, stalled=False, stalls=0, clock=10.0, rate=1.0) -> CatchupInput:
    return CatchupInput(np.array([0]), np.array([latency]), np.array([target]), np.array([buffer]),
                        np.array([stalled]), np.array([stalls]), np.array([clock]), np.array([rate]))


def law(name, bounds=ServiceBounds(), **params):
    x = catchup.get(name, **params)
    x.reset(1, bounds)
    return x


def test_dashjs_sigmoid_with_its_default_bounds():
    # Δ = 1 s, c = 0.5: (1 − 0.5) + 2·0.5 / (1 + e^−5) = 0.5 + 0.993307149 = 1.493307149
    out = law("dashjs").update(one(4.5))
    assert out.rate[0] == pytest.approx(0.5 + 1.0 / (1.0 + math.exp(-5.0)), abs=1e-12)
    assert out.rate[0] == pytest.approx(1.4933071490757153, abs=1e-12)
    assert out.seek_s[0] == 0.0


def test_dashjs_within_the_service_description_rates():
    # Δ = −0.2 s, c = 1 − 0.96 = 0.04: 0.96 + 0.08 / (1 + e^1) = 0.96 + 0.021515... = 0.981515...
    out = law("dashjs", ORIGIN).update(one(3.3))
    assert out.rate[0] == pytest.approx(0.96 + 0.08 / (1.0 + math.e), abs=1e-12)
    # a change smaller than 0.02 / (0.5 / 0.04) = 0.0016 is not applied: Δ = 1 ms gives 1.0001
    out = law("dashjs", ORIGIN).update(one(3.501))
    assert out.rate[0] == 1.0


def test_dashjs_rate_one_while_the_buffer_is_at_most_its_stall_threshold():
    # dash.js: BufferController says BUFFER_EMPTY at a level <= 0.3 s (lowLatencyStallThreshold),
    # BUFFER_LOADED above it; CatchupController.playbackStalled follows that state, and
    # _calculateNewPlaybackRateDefault returns 1.0 while it is set
    x = law("dashjs")
    assert x.update(one(6.0, buffer=0.0, stalled=True, stalls=1)).rate[0] == 1.0
    assert x.update(one(6.0, buffer=0.3, stalls=1)).rate[0] == 1.0          # 0.3 <= 0.3: BUFFER_EMPTY
    # 0.31 > 0.3: BUFFER_LOADED clears it, though far below half the 3.5 s target (the rule
    # until 2026-12-05 kept rate 1 up to 1.75 s): Δ = 2.5 s, 0.5 + 1 / (1 + e^-12.5)
    assert x.update(one(6.0, buffer=0.31, stalls=1)).rate[0] == pytest.approx(0.5 + 1.0 / (1.0 + math.exp(-12.5)))
    assert x.update(one(6.0, buffer=0.2, stalls=1)).rate[0] == 1.0          # back below: rate 1 again
    # the threshold is dash.js's setting, a parameter here
    y = law("dashjs", stall_threshold_s=0.5)
    assert y.update(one(6.0, buffer=0.4)).rate[0] == 1.0
    assert y.update(one(6.0, buffer=0.6)).rate[0] > 1.4


def test_dashjs_seeks_beyond_max_drift_from_the_service_description():
    # maxDrift = (Latency@max − @target + 500 ms) / 1000 = 7 − 3.5 + 0.5 = 4 s
    x = law("dashjs", ORIGIN)
    assert x.drift_s == pytest.approx(4.0)
    out = x.update(one(8.0, rate=1.02))
    assert out.seek_s[0] == pytest.approx(4.5)
    assert out.rate[0] == 1.02        # the seek branch leaves the rate alone
    assert x.update(one(7.4)).seek_s[0] == 0.0
    assert law("dashjs").drift_s == 12.0   # dash.js's DEFAULT_CATCHUP_MAX_DRIFT without a description


def test_dashjs_lolp_follows_the_buffer_when_it_is_low():
    # buffer 0.3 < 0.5: c = |min| = 0.5, Δ = 0.3 − 0.5 → 0.5 + 1 / (1 + e^1) = 0.768941...
    out = law("dashjs-lolp").update(one(3.5, buffer=0.3))
    assert out.rate[0] == pytest.approx(0.5 + 1.0 / (1.0 + math.e), abs=1e-12)
    # inside ±2 % of the target: 1
    assert law("dashjs-lolp").update(one(3.56, buffer=2.0)).rate[0] == 1.0


def test_shaka_bang_bang():
    x = law("shaka")
    assert x.update(one(4.1)).rate[0] == 1.1      # above 3.5 + 0.5
    assert x.update(one(3.9)).rate[0] == 1.0
    assert x.update(one(2.9)).rate[0] == 0.95     # below 3.5 − 0.5
    y = law("shaka", ORIGIN)                      # the description's rates replace the defaults
    assert y.update(one(4.1)).rate[0] == 1.04 and y.update(one(2.9)).rate[0] == 0.96


def test_shaka_panic_mode_after_a_rebuffer():
    x = law("shaka", panic_mode=True, panic_threshold_s=60.0)
    assert x.update(one(5.0, stalls=1, clock=10.0)).rate[0] == 0.95
    assert x.update(one(5.0, stalls=1, clock=69.0)).rate[0] == 0.95
    assert x.update(one(5.0, stalls=1, clock=71.0)).rate[0] == 1.1


def test_media3_proportional_and_clamped():
    x = law("media3", ORIGIN)
    # error 1 s, k 0.1: 1.1, clamped to the description's 1.04
    assert x.update(one(4.5, buffer=2.0)).rate[0] == pytest.approx(1.04)
    y = law("media3", ORIGIN, proportional_factor=0.01)
    assert y.update(one(4.5, buffer=2.0)).rate[0] == pytest.approx(1.01)
    z = law("media3", ORIGIN)
    assert z.update(one(3.51, buffer=3.0)).rate[0] == 1.0   # within 20 ms of the target


def test_media3_rebuffer_raises_the_target():
    # a rebuffer: target 3.5 + 0.5 = 4.0; latency − buffer = 0 is safe, so the target comes
    # down by at most (1 − 1)·1 s + (1.04 − 1)·1 s = 0.04 s: 3.96; error 0.04 → 1.004
    out = law("media3", ORIGIN).update(one(4.0, buffer=4.0, stalls=1))
    assert out.target_s[0] == pytest.approx(3.96)
    assert out.rate[0] == pytest.approx(1.004)


def test_none_keeps_rate_one_and_the_laws_are_named():
    assert law("none").update(one(30.0)).rate[0] == 1.0
    assert set(catchup.names()) == {"none", "dashjs", "dashjs-lolp", "shaka", "media3"}
    with pytest.raises(InputError, match="unknown catch-up law"):
        catchup.get("hls")
    with pytest.raises(InputError, match="unknown parameter"):
        catchup.get("shaka", tolerance=1)


def test_buffer_drains_at_the_rate():
    b = BufferState.new(2, playing_from_start=True)
    b.buffer_s[:] = 1.0
    stall = b.elapse(np.array([1.0, 1.0]), rate=np.array([1.5, 0.5]))
    # 1 s of media at 1.5x lasts 2/3 s: 1/3 s of stall; at 0.5x half of it is left
    assert stall == pytest.approx([1 / 3, 0.0])
    assert b.buffer_s == pytest.approx([0.0, 0.5])
    assert b.played_s == pytest.approx([1.0, 0.5])
    assert list(b.stall_count) == [1, 0]
