"""Live availability: which segments of a live template exist at a wall-clock time.

A pure function of the MPD's numbers and a given `now` (seconds since the epoch), so the
live player, the simulator and the tests agree on the live edge and the time-shift
window without a clock of their own. Formulas: ISO/IEC 23009-1 5.3.9.5.3 and DASH-IF IOP
4.3 (dash.js's TimelineConverter and livesim2 compute the same window).
"""
from __future__ import annotations

import math
from fractions import Fraction

from player.dash.segments import LiveSegmentTemplate

__all__ = ["available_segment_numbers"]


def available_segment_numbers(template: LiveSegmentTemplate, now_s: float, *,
                              availability_start_time_s: float,
                              time_shift_buffer_depth_s: float | None = None
                              ) -> tuple[int, int | None] | None:
    """(first, last) segment numbers of a live template available at wall-clock `now_s`.

    ISO/IEC 23009-1 5.3.9.5.3 (DASH-IF IOP 4.3): with P = availabilityStartTime + period
    start, D the segment duration and ATO the availabilityTimeOffset, the segment of index
    i (number startNumber + i) is available from P + (i + 1)·D − ATO (when it is complete,
    less the offset) until P + (i + 2)·D + timeShiftBufferDepth (the offset does not
    extend the end). So last = floor((now − P + ATO) / D) − 1 and, with a time-shift
    buffer, first = max(0, floor((now − P − TSBD) / D) − 1); without one every segment
    since the period start stays. Both stop at the period end and @endNumber.

    `last` is None when nothing bounds it (an infinite ATO in an open period); the
    result is None when no segment is available (too early, or all gone). Times are
    seconds since the epoch; exact arithmetic, so a boundary is never missed by rounding.
    """
    d = Fraction(template.duration, template.timescale)
    elapsed = Fraction(now_s) - Fraction(availability_start_time_s) - Fraction(template.period_start_s)
    limit: int | None = None                    # index of the period's last segment
    if template.period_end_s is not None:
        span = Fraction(template.period_end_s) - Fraction(template.period_start_s)
        limit = math.ceil(span / d) - 1
    if template.end_number is not None:
        by_number = template.end_number - template.start_number
        limit = by_number if limit is None else min(limit, by_number)
    ato = template.availability_time_offset_s
    if math.isinf(ato):
        last = limit
    else:
        last = math.floor((elapsed + Fraction(ato)) / d) - 1
        if limit is not None:
            last = min(last, limit)
    first = 0
    if time_shift_buffer_depth_s is not None:
        first = max(0, math.floor((elapsed - Fraction(time_shift_buffer_depth_s)) / d) - 1)
    if (last is not None and last < first) or (limit is not None and first > limit):
        return None
    return template.start_number + first, None if last is None else template.start_number + last
