"""Is what arrived media? The structure checks a body passes before the player keeps it.

A server can answer 200 with anything: random bytes, an empty body, an HTML error page, a
file cut short. Played as video, such a body would count as a segment downloaded; here it is
a failed download instead (the fetcher retries it, fails over to another edge, then gives up
with a clear error). The checks walk the ISO-BMFF boxes with `netem.isobmff`, which refuses
a box whose size runs past its parent or the body:

* an init segment is well-formed boxes including a ``moov``;
* a media segment (or a SegmentBase range: a run of fragments) is well-formed boxes with a
  ``moof`` and an ``mdat`` after it (``styp``, ``sidx``, ``emsg``, ``prft`` may come too);
* a SegmentBase index range is well-formed boxes with a ``sidx`` (after the init segment,
  when one range holds both).

Only ISO-BMFF is checked: a representation whose MIME type names another container (WebM,
MPEG-TS) passes as it is.
"""
from __future__ import annotations

from netem import isobmff
from netem.errors import BoxError


def is_isobmff(mime_type: str | None) -> bool:
    """Whether a representation's segments are ISO-BMFF (unknown: assumed, as DASH mostly is)."""
    return mime_type is None or "mp4" in mime_type.lower()


def _boxes(data: bytes, what: str) -> list[isobmff.Box]:
    if not data:
        raise BoxError(f"{what} is empty (0 bytes)")
    try:
        return isobmff.parse(data)
    except BoxError as exc:
        raise BoxError(f"{what} is not ISO-BMFF: {exc}") from None


def check_init(data: bytes) -> None:
    """Raise BoxError unless `data` is an init segment (well-formed boxes with a ``moov``)."""
    boxes = _boxes(data, "init segment")
    if not any(b.type == "moov" for b in boxes):
        raise BoxError(f"init segment has no moov box (boxes: {_names(boxes)})")


def check_media(data: bytes) -> None:
    """Raise BoxError unless `data` is media fragments (well-formed boxes, a ``moof`` and an
    ``mdat`` after it)."""
    boxes = _boxes(data, "media segment")
    moof = next((b for b in boxes if b.type == "moof"), None)
    if moof is None or not any(b.type == "mdat" and b.offset > moof.offset for b in boxes):
        raise BoxError(f"media segment has no moof followed by an mdat (boxes: {_names(boxes)})")


def check_index(data: bytes, init_bytes: int = 0) -> None:
    """Raise BoxError unless `data` is a segment index: its first `init_bytes` an init
    segment (when the range holds both), the rest well-formed boxes with a ``sidx``."""
    if init_bytes:
        check_init(data[:init_bytes])
    boxes = _boxes(data[init_bytes:], "segment index")
    if not any(b.type == "sidx" for b in boxes):
        raise BoxError(f"segment index has no sidx box (boxes: {_names(boxes)})")


def _names(boxes: list[isobmff.Box], limit: int = 6) -> str:
    names = [repr(b.type) for b in boxes[:limit]] + (["…"] if len(boxes) > limit else [])
    return ", ".join(names) or "none"
