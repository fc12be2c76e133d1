"""The live (and low-latency) DASH origin: any VoD content looped on the wall clock.

In the style of DASH-IF livesim2: stateless and clock-driven — every answer (the MPD,
which segments exist, a segment's bytes, when a low-latency chunk may leave) is a
function of the request and the origin clock's time, so tests pin the clock.

    timeline.py      pure timing: the looped segment timeline, availability, periods
    config.py        LiveConfig (the options) and their checks
    segments.py      VoD segment → live segment (tfdt/mfhd rewritten, CMAF chunks)
    presentation.py  a Packaged presentation as a live one: tracks, paths, segments
    vod.py           a VoD directory (`abrlab content make` output) as a Packaged
    mpd.py           the dynamic MPD at an instant
    utc.py           UTCTiming schemes and time formats
    clock.py         the origin clock: SystemClock (offset, time scale), ManualClock
    origin.py        LiveSource (paths → resources at an instant) and LiveEdge (HTTP)
"""
