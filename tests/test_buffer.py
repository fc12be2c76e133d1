"""The shared buffer model, on hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest

from player.core.buffer import BufferState


def test_playing_buffer_drains_and_stalls_once_per_empty_period():
    st = BufferState.new(2, playing_from_start=False)
    st.add(np.array([4.0, 4.0]), np.zeros(2))          # both start playing with 4 s
    assert st.playing.all() and np.allclose(st.startup_s, 0.0)
    stall = st.elapse(np.array([3.0, 6.0]))            # second runs dry 2 s in
    assert stall == pytest.approx([0.0, 2.0])
    assert st.buffer_s == pytest.approx([1.0, 0.0])
    st.elapse(np.array([0.0, 1.0]))                    # the same stall goes on: still one event
    assert st.stall_count.tolist() == [0, 1]
    assert st.stall_s == pytest.approx([0.0, 3.0])
    st.add(np.array([4.0, 4.0]), np.zeros(2))          # a download ends the stall
    assert not st.stalled.any()
    st.elapse(np.array([0.0, 5.0]))                    # a new empty buffer is a second event
    assert st.stall_count.tolist() == [0, 2]


def test_no_stall_before_playback_starts_and_startup_threshold():
    st = BufferState.new(1)
    assert st.elapse(np.array([5.0]))[0] == 0.0
    st.add(np.array([2.0]), np.array([4.0]))          # 2 s < 4 s threshold: not yet
    assert not st.playing[0]
    st.elapse(np.array([1.0]))
    st.add(np.array([2.0]), np.array([4.0]))
    assert st.playing[0] and st.startup_s[0] == pytest.approx(6.0)


def test_pause_freezes_playhead_without_stalls():
    st = BufferState.new(1)
    st.add(np.array([1.0]), np.zeros(1))
    st.paused[:] = True
    assert st.elapse(np.array([10.0]))[0] == 0.0
    assert st.buffer_s[0] == 1.0 and st.stall_count[0] == 0


def test_room_wait_whole_segment_and_quantised():
    st = BufferState.new(1, playing_from_start=True)
    st.add(np.array([24.0]), np.zeros(1))
    # Sabre: 24 s buffered + a 3 s segment must fit under 25 s -> wait 2 s
    assert st.room_wait(3.0, np.array([25.0]), whole_segment=True)[0] == pytest.approx(2.0)
    st.add(np.array([40.0]), np.zeros(1))            # 64 s buffered
    # Pensieve: drain to 60 s in 0.5 s sleeps: 4 s exactly, and 60.2 -> 0.5 s
    assert st.room_wait(4.0, np.array([60.0]), whole_segment=False, quantum_s=0.5)[0] == pytest.approx(4.0)
    st.elapse(np.array([3.8]))
    assert st.room_wait(4.0, np.array([60.0]), whole_segment=False, quantum_s=0.5)[0] == pytest.approx(0.5)


def test_play_out_plays_everything_left():
    st = BufferState.new(1, playing_from_start=True)
    st.add(np.array([7.5]), np.zeros(1))
    assert st.play_out()[0] == pytest.approx(7.5)
    assert st.buffer_s[0] == 0.0 and st.played_s[0] == pytest.approx(7.5) and st.clock_s[0] == pytest.approx(7.5)


def test_a_browser_stops_above_a_floor_and_resumes_at_a_level():
    """Chrome's <video> as `dashjs-live` states it: playback stops with `floor_s` still buffered
    and a stall ends only once `resume_s` is buffered again (hand-computed)."""
    b = BufferState.new(1, floor_s=0.05, resume_s=0.25)
    b.add(np.array([0.3]), np.array([0.0]))          # 0.3 s buffered: playback starts
    assert b.playing[0]
    stall = b.elapse(np.array([0.5]))                # 0.25 s play (down to the floor), then 0.25 s stalled
    assert stall[0] == pytest.approx(0.25) and b.buffer_s[0] == pytest.approx(0.05)
    assert b.stalled[0] and b.stall_count[0] == 1
    b.add(np.array([0.1]), np.array([0.0]))          # 0.15 s: still short of 0.25, the stall holds
    assert b.stalled[0]
    assert b.elapse(np.array([0.1]))[0] == pytest.approx(0.1) and b.buffer_s[0] == pytest.approx(0.15)
    b.add(np.array([0.1]), np.array([0.0]))          # 0.25 s: it resumes
    assert not b.stalled[0]
    assert b.elapse(np.array([0.1]), rate=np.array([1.0]))[0] == 0.0 and b.buffer_s[0] == pytest.approx(0.15)
    assert b.stall_s[0] == pytest.approx(0.35) and b.stall_count[0] == 1
    plain = BufferState.new(1)                       # the defaults: play it all out, resume on any media
    plain.add(np.array([0.3]), np.array([0.0]))
    assert plain.elapse(np.array([0.5]))[0] == pytest.approx(0.2) and plain.buffer_s[0] == 0.0
    plain.add(np.array([0.01]), np.array([0.0]))
    assert not plain.stalled[0]
