"""The buffer and playback model shared by the simulator and the HTTP player.

Vectorised over sessions (a real player is n = 1): every operation takes and updates
arrays, so the simulator's lockstep batch and the sans-IO session core run the same code.
The rules, stated once:
- playback starts when the buffer first reaches the startup threshold (or immediately,
  when the preset counts the startup wait as a stall, as Pensieve does);
- while playing, elapsed time drains the buffer (at the playback rate, which live catch-up
  may move off 1) down to `floor_s` (a browser stops with some media still buffered: 0 by
  default); time beyond it is a stall, and a stall ends only when media arrives (a download
  completes, or a low-latency chunk of one) and the buffer holds `resume_s` again (a browser
  resumes only with some media ahead: 0 by default, any media);
- before a request, the session waits until the next segment fits under the cap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BufferState:
    """Per-session playback state (all arrays of length n)."""

    buffer_s: np.ndarray
    playing: np.ndarray        # playback has started
    paused: np.ndarray         # user pause: the playhead does not move, no stall accrues
    stalled: np.ndarray        # currently in a stall
    stall_s: np.ndarray        # total stall time
    stall_count: np.ndarray    # number of stall events
    played_s: np.ndarray       # media time played
    startup_s: np.ndarray      # session time at which playback started (NaN before)
    clock_s: np.ndarray        # session clock
    floor_s: float = 0.0       # playback stops with this much still buffered
    resume_s: float = 0.0      # a stall ends once this much is buffered (and media arrived)

    @classmethod
    def new(cls, n: int, playing_from_start: bool | np.ndarray = False, floor_s: float = 0.0,
            resume_s: float = 0.0) -> "BufferState":
        playing = np.broadcast_to(np.asarray(playing_from_start, dtype=bool), (n,)).copy()
        return cls(
            buffer_s=np.zeros(n), playing=playing, paused=np.zeros(n, dtype=bool),
            stalled=np.zeros(n, dtype=bool), stall_s=np.zeros(n), stall_count=np.zeros(n, dtype=np.int64),
            played_s=np.zeros(n), startup_s=np.where(playing, 0.0, np.nan), clock_s=np.zeros(n),
            floor_s=float(floor_s), resume_s=float(resume_s),
        )

    def playable(self, rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the media that can play before playback stops (the buffer above the floor;
        none while a stall holds), and whether a stall holds (stalled, the buffer short of
        `resume_s`)."""
        return self._playable(self.buffer_s[rows], rows)

    def _playable(self, buf: np.ndarray, rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        if self.floor_s == 0.0 and self.resume_s == 0.0:   # every preset but a browser's: all of it, never held
            return buf, np.zeros(np.shape(buf), dtype=bool)
        held = self.stalled[rows] & (buf < self.resume_s - 1e-12)
        return np.where(held, 0.0, np.maximum(buf - self.floor_s, 0.0)), held

    def elapse(self, dt: np.ndarray, rows: np.ndarray | slice = slice(None),
               rate: np.ndarray | None = None) -> np.ndarray:
        """Let `dt` seconds pass for the given rows; returns the stall time it caused.

        `rate` (live catch-up): the playback rate per row, media seconds played per second;
        the buffer then empties after buffer / rate seconds. None: normal speed."""
        dt = np.asarray(dt, dtype=np.float64)
        buf = self.buffer_s[rows]
        moving = self.playing[rows] & ~self.paused[rows]
        usable, held = self._playable(buf, rows)
        if rate is None:
            drained = np.where(moving, np.minimum(usable, dt), 0.0)
            stall = np.where(moving, dt - drained, 0.0)
        else:   # the buffer runs out only when it is short of the media played (no rounding stalls)
            need = dt * rate
            empty = moving & (held | (usable < need - 1e-12))
            # within rounding of the media played, the buffer is exactly empty (no stall): the
            # same session stepped in other increments (the core's waits, the simulator's
            # lockstep) must not keep a 1e-16 s residue that a policy reads as "not empty"
            drained = np.where(moving, np.where(usable < need + 1e-12, usable, need), 0.0)
            stall = np.where(empty, np.maximum(dt - usable / rate, 0.0), 0.0)
        new_stall = (stall > 0) & ~self.stalled[rows]
        self.buffer_s[rows] = buf - drained
        self.played_s[rows] += drained
        self.stall_s[rows] += stall
        self.stall_count[rows] += new_stall
        self.stalled[rows] |= stall > 0
        self.clock_s[rows] += dt
        return stall

    def add(self, media_s: np.ndarray, startup_threshold_s: np.ndarray, rows: np.ndarray | slice = slice(None)) -> None:
        """A download completed: its media joins the buffer; a stall ends (once `resume_s` is
        buffered); playback may start."""
        self.buffer_s[rows] += media_s
        if self.resume_s > 0.0:
            self.stalled[rows] = self.stalled[rows] & (self.buffer_s[rows] < self.resume_s - 1e-12)
        else:
            self.stalled[rows] = False
        start = ~self.playing[rows] & (self.buffer_s[rows] >= startup_threshold_s - 1e-12)
        if np.any(start):
            playing = self.playing[rows]
            startup = self.startup_s[rows]
            startup[start] = self.clock_s[rows][start]
            playing |= start
            self.playing[rows] = playing
            self.startup_s[rows] = startup

    def room_wait(self, next_media_s: np.ndarray, cap_s: np.ndarray, whole_segment: bool,
                  quantum_s: float = 0.0, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """How long to wait before requesting so that the buffer stays under its cap.

        With `whole_segment`, the next segment must fit entirely (Sabre); otherwise the
        buffer only has to be at or below the cap (Pensieve), waited in `quantum_s` steps.
        Sessions not yet playing never wait (their buffer cannot drain); a paused session
        waits too (its buffer is full and does not drain until the user resumes).
        """
        over = self.buffer_s[rows] + (next_media_s if whole_segment else 0.0) - cap_s
        wait = np.maximum(over, 0.0)
        if quantum_s > 0:
            wait = np.ceil(wait / quantum_s - 1e-9) * quantum_s
        return np.where(self.playing[rows], wait, 0.0)

    def play_out(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The content has all been downloaded: play what is buffered; returns its duration."""
        rest = np.where(self.playing[rows], self.buffer_s[rows], 0.0)
        self.played_s[rows] += rest
        self.clock_s[rows] += rest
        self.buffer_s[rows] = self.buffer_s[rows] - rest
        return rest
