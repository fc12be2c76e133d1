"""An independent MPD -> URL resolver (what a player does), built on mpegdash's model, so
the packaging and encoding tests check our MPDs against a reading that is not our own."""
from __future__ import annotations

import math
import re

from mpegdash.parser import MPEGDASHParser

from netem import isobmff as bm


def xs_seconds(text: str) -> float:
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", text)
    assert m, text
    return int(m[1] or 0) * 3600 + int(m[2] or 0) * 60 + float(m[3] or 0)


def mpd_segment_urls(xml: str, read=None) -> dict[str, list[tuple[str, tuple[int, int] | None]]]:
    """Per representation: [(url, inclusive byte range or None)] of the init segment then
    every media segment, from the MPD alone (plus the sidx, read through `read(path, a, b)`,
    for SegmentBase)."""
    mpd = MPEGDASHParser.parse(xml)
    total = xs_seconds(mpd.media_presentation_duration)
    out = {}
    for aset in mpd.periods[0].adaptation_sets:
        for rep in aset.representations:
            rid = rep.id
            tmpl = (rep.segment_templates or aset.segment_templates or [None])[0]
            if tmpl is not None:
                sub = lambda s, **kw: s.replace("$RepresentationID$", rid).replace(  # noqa: E731
                    "$Number$", str(kw.get("n", ""))).replace("$Time$", str(kw.get("t", "")))
                urls = [(sub(tmpl.initialization), None)]
                if tmpl.segment_timelines:
                    t, k = 0, tmpl.start_number or 1
                    for s in tmpl.segment_timelines[0].Ss:
                        t = s.t if s.t is not None else t
                        for _ in range((s.r or 0) + 1):
                            urls.append((sub(tmpl.media, n=k, t=t), None))
                            t += s.d
                            k += 1
                else:
                    count = math.ceil(total * tmpl.timescale / tmpl.duration - 1e-6)
                    urls += [(sub(tmpl.media, n=(tmpl.start_number or 1) + i), None) for i in range(count)]
            elif rep.segment_lists:
                sl = rep.segment_lists[0]
                urls = [(sl.initializations[0].source_url, None)] + [(u.media, None) for u in sl.segment_urls]
            else:
                sb = rep.segment_bases[0]
                path = rep.base_urls[0].base_url_value
                a, b = (int(x) for x in sb.initializations[0].range.split("-"))
                ia, ib = (int(x) for x in sb.index_range.split("-"))
                urls = [(path, (a, b))]
                assert read is not None
                (box,) = bm.parse(read(path, ia, ib + 1))
                sidx = bm.parse_sidx(box)
                pos = ib + 1 + sidx.first_offset
                for r in sidx.references:
                    urls.append((path, (pos, pos + r.referenced_size - 1)))
                    pos += r.referenced_size
            out[rid] = urls
    return out
