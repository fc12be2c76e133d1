"""Parse an ISO-BMFF `sidx` (segment index) box from bytes (ISO/IEC 14496-12, 8.16.3).

SegmentBase/indexRange manifests (the "on-demand" profile) describe one media file per
representation; the byte ranges and durations of its segments live in a `sidx` box the
player fetches with a range request. This module turns those bytes into plain numbers;
`player.dash.manifest.resolve_sidx` turns the result into a `SegmentIndex`.

Untrusted input: every length is checked against the bytes actually present, so a box
that claims more references than it holds is an error, never an over-read or a large
allocation (`reference_count` is 16 bits: at most 65,535 references per box).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from netem.errors import InputError

__all__ = ["SidxError", "SidxUnsupported", "SidxReference", "Subsegment", "Sidx", "parse_sidx"]


class SidxError(InputError):
    """The bytes are not a well-formed `sidx` box (truncated, wrong box, zero timescale...)."""


class SidxUnsupported(SidxError):
    """A well-formed `sidx` this player does not handle (hierarchical indexes)."""


@dataclass(frozen=True)
class SidxReference:
    """One entry of the box, as written (sizes in bytes, durations in `Sidx.timescale` ticks)."""

    reference_type: int          # 0: media, 1: another sidx (hierarchical index)
    referenced_size: int         # bytes
    subsegment_duration: int     # ticks
    starts_with_sap: bool
    sap_type: int
    sap_delta_time: int


@dataclass(frozen=True)
class Subsegment:
    """A media subsegment located in the file: inclusive byte range and timing in ticks."""

    first_byte: int
    last_byte: int               # inclusive, as in an HTTP Range header
    start: int                   # earliest presentation time, ticks
    duration: int                # ticks

    @property
    def size_bytes(self) -> int:
        return self.last_byte - self.first_byte + 1


@dataclass(frozen=True)
class Sidx:
    version: int
    reference_id: int
    timescale: int               # ticks per second
    earliest_presentation_time: int
    first_offset: int            # bytes from the anchor to the first referenced byte
    references: tuple[SidxReference, ...]
    box_offset: int              # file offset of the box's first byte
    box_size: int                # bytes, header included

    @property
    def anchor(self) -> int:
        """File offset of the first byte after the box: offsets in the box count from here."""
        return self.box_offset + self.box_size

    def subsegments(self) -> list[Subsegment]:
        """Media subsegments in order; raises `SidxUnsupported` for hierarchical indexes."""
        out: list[Subsegment] = []
        pos = self.anchor + self.first_offset
        t = self.earliest_presentation_time
        for i, ref in enumerate(self.references):
            if ref.reference_type == 1:
                raise SidxUnsupported(
                    f"hierarchical sidx (reference {i} points to another sidx) is not supported")
            if ref.referenced_size <= 0:
                raise SidxError(f"sidx reference {i} has referenced_size 0")
            out.append(Subsegment(pos, pos + ref.referenced_size - 1, t, ref.subsegment_duration))
            pos += ref.referenced_size
            t += ref.subsegment_duration
        return out


_HEADER = struct.Struct(">I4s")


def _boxes(data: bytes, offset: int):
    """Yield (type, start, size, header_len) of the top-level boxes in `data`."""
    pos = 0
    n = len(data)
    while pos + 8 <= n:
        size, kind = _HEADER.unpack_from(data, pos)
        header = 8
        if size == 1:
            if pos + 16 > n:
                raise SidxError(f"box at byte {offset + pos} is truncated (64-bit size)")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = n - pos
        if size < header:
            raise SidxError(f"box at byte {offset + pos} has an impossible size {size}")
        yield kind, pos, size, header
        pos += size


def parse_sidx(data: bytes, *, offset: int = 0) -> Sidx:
    """Parse the first `sidx` box found among the top-level boxes of `data`.

    `offset` is the file offset of `data[0]` (the start of the manifest's indexRange), so
    that `Sidx.anchor` and the subsegment byte ranges are absolute file offsets. Boxes
    before the `sidx` (e.g. `styp`) are skipped.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse_sidx expects bytes")
    data = bytes(data)
    if offset < 0:
        raise ValueError("offset must be >= 0")
    for kind, start, size, header in _boxes(data, offset):
        if kind != b"sidx":
            continue
        if start + size > len(data):
            raise SidxError(
                f"sidx box at byte {offset + start} is truncated: it declares {size} bytes, "
                f"{len(data) - start} present")
        return _parse_body(data[start + header:start + size], offset + start, size)
    if len(data) < 8:
        raise SidxError(f"no sidx box: only {len(data)} bytes")
    raise SidxError("no sidx box in the index range")


def _parse_body(body: bytes, box_offset: int, box_size: int) -> Sidx:
    def need(n: int, what: str) -> None:
        if len(body) < n:
            raise SidxError(f"sidx box at byte {box_offset} is truncated ({what})")

    need(4, "version/flags")
    version = body[0]
    if version > 1:
        raise SidxUnsupported(f"sidx version {version} is not supported (0 and 1 are)")
    if version == 0:
        need(20, "header")
        ref_id, timescale, ept, first_offset = struct.unpack_from(">IIII", body, 4)
        pos = 20
    else:
        need(28, "header")
        ref_id, timescale, ept, first_offset = struct.unpack_from(">IIQQ", body, 4)
        pos = 28
    need(pos + 4, "reference count")
    (count,) = struct.unpack_from(">H", body, pos + 2)
    pos += 4
    if timescale == 0:
        raise SidxError(f"sidx box at byte {box_offset} has timescale 0")
    need(pos + 12 * count, f"{count} references declared")
    refs = []
    for i in range(count):
        a, duration, c = struct.unpack_from(">III", body, pos + 12 * i)
        refs.append(SidxReference(
            reference_type=a >> 31,
            referenced_size=a & 0x7FFFFFFF,
            subsegment_duration=duration,
            starts_with_sap=bool(c >> 31),
            sap_type=(c >> 28) & 0x7,
            sap_delta_time=c & 0x0FFFFFFF,
        ))
    return Sidx(version=version, reference_id=ref_id, timescale=timescale,
                earliest_presentation_time=ept, first_offset=first_offset,
                references=tuple(refs), box_offset=box_offset, box_size=box_size)
