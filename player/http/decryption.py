"""The player's decryption (its CDM stand-in): 'cenc' media segments decrypted with a
licence's keys, then checked.

* `track_crypto(init)` reads what an init segment says about encryption: the track kind and
  its ``tenc`` (default KID, IV size);
* `Decryptor(keys).decrypt(track, data)` decrypts a media segment (or a SegmentBase run of
  ``moof``+``mdat``) with `netem.cenc.decrypt_segment`, the CENC primitive the packager and
  the edge use too (AES-128-CTR; needs the optional ``cryptography`` package);
* `verify_media(data, kind)` checks that a (decrypted) segment is well formed: every
  ``trun`` sample lies inside its ``mdat`` and, for video, each sample is a chain of
  length-prefixed NAL units that tiles it exactly — what a wrong key would break;
* `SessionDecryption` is a session's use of them: the keys of the licence in use, and what
  each init segment says, read once.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from netem import cenc, isobmff
from netem.errors import BoxError, DecryptError
from player.dash.drm import b64url

#: codec prefixes whose samples are length-prefixed NAL units (checked by `verify_media`)
NAL_CODECS = ("avc1", "avc3", "hvc1", "hev1", "encv", "avc")


def crypto_available() -> bool:
    """Whether the optional ``cryptography`` package is installed."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class TrackCrypto:
    """What an init segment says about encryption: None fields when the track is clear."""

    kid: bytes | None
    iv_size: int
    kind: str               # video | audio | unknown
    protected: bool


def track_crypto(init: bytes) -> TrackCrypto:
    """Read `tenc` (default KID, IV size) and the track kind from an init segment."""
    try:
        boxes = isobmff.parse(init)
        stsd = isobmff.find(boxes, "moov/trak/mdia/minf/stbl/stsd")
        hdlr = isobmff.find(boxes, "moov/trak/mdia/hdlr")
    except BoxError as exc:
        raise DecryptError(f"init segment is not valid ISO-BMFF: {exc}") from None
    kind = "unknown"
    if hdlr is not None and len(hdlr.data) >= 12:
        kind = {"vide": "video", "soun": "audio"}.get(bytes(hdlr.data[8:12]).decode("latin-1"), "unknown")
    if stsd is None:
        return TrackCrypto(None, 0, kind, False)
    for entry in stsd.children:
        tenc = entry.find("sinf/schi/tenc")
        if tenc is not None:
            t = isobmff.parse_tenc(tenc)
            return TrackCrypto(t["kid"], int(t["iv_size"]) or 8, kind, bool(t["is_protected"]))
    return TrackCrypto(None, 0, kind, False)


class Decryptor:
    """Decrypts 'cenc' segments with the keys of a license (KID → key, 16 bytes each)."""

    def __init__(self, keys: dict[bytes, bytes]) -> None:
        if not crypto_available():
            raise DecryptError("decryption needs the optional 'cryptography' package (pip install abrlab[drm])")
        self.keys = dict(keys)

    def decrypt(self, track: TrackCrypto, data: bytes) -> bytes:
        if not track.protected:
            return data
        key = self.keys.get(track.kid) if track.kid else None
        if key is None and len(self.keys) == 1 and track.kid is None:
            key = next(iter(self.keys.values()))
        if key is None:
            raise DecryptError(f"no key for KID {b64url(track.kid) if track.kid else '?'} in the license")
        try:
            return cenc.decrypt_segment(data, key, track.iv_size)
        except (BoxError, ValueError) as exc:
            raise DecryptError(f"cannot decrypt: {exc}") from None


def verify_media(data: bytes, kind: str = "unknown", nal_length_size: int = 4) -> int:
    """Check a media segment (or moof+mdat run): samples inside their mdat and, for video,
    NAL length chains tiling every sample. Returns the number of samples checked."""
    try:
        boxes = isobmff.parse(data)
    except BoxError as exc:
        raise DecryptError(f"segment is not valid ISO-BMFF: {exc}") from None
    checked = 0
    mdats = [b for b in boxes if b.type == "mdat"]
    if not mdats:
        raise DecryptError("segment has no mdat")
    for moof in (b for b in boxes if b.type == "moof"):
        mdat = next((m for m in mdats if m.offset > moof.offset), None)
        if mdat is None:
            raise DecryptError(f"moof at {moof.offset} has no mdat after it")
        lo, hi = mdat.offset + mdat.header_size, mdat.offset + mdat.size
        for traf in moof.find_all("traf"):
            tfhd_b, trun_b = traf.find("tfhd"), traf.find("trun")
            if tfhd_b is None or trun_b is None:
                continue
            try:
                tfhd = isobmff.parse_tfhd(tfhd_b)
                trun = isobmff.parse_trun(trun_b, tfhd)
            except BoxError as exc:
                raise DecryptError(str(exc)) from None
            pos = tfhd.get("base_data_offset", moof.offset) + (trun["data_offset"] or 0)
            for size in trun["sizes"]:
                if pos < lo or pos + size > hi:
                    raise DecryptError(f"sample at {pos} ({size} bytes) lies outside its mdat [{lo}, {hi})")
                if kind == "video":
                    _check_nal_chain(data, pos, size, nal_length_size)
                pos += size
                checked += 1
    return checked


def _check_nal_chain(data: bytes, pos: int, size: int, length_size: int) -> None:
    q, end = pos, pos + size
    while q < end:
        if q + length_size > end:
            raise DecryptError(f"truncated NAL length in the sample at {pos}")
        n = int.from_bytes(data[q:q + length_size], "big")
        q += length_size + n
        if n == 0 or q > end:
            raise DecryptError(f"NAL units do not tile the sample at {pos}")


def nal_kind(track_kind: str, codecs: str | None) -> str:
    """The `kind` to verify a segment as: "video" when its samples are NAL units."""
    return track_kind if (codecs or "avc").split(".")[0] in NAL_CODECS else "unknown"


class SessionDecryption:
    """A session's decryption: a `Decryptor` for the licence in use (none until one with
    keys arrives) and each init segment's `TrackCrypto`, read once per init segment."""

    def __init__(self) -> None:
        self.decryptor: Decryptor | None = None
        self._tracks: dict[Any, TrackCrypto] = {}

    def use_keys(self, keys: dict[bytes, bytes]) -> None:
        self.decryptor = Decryptor(keys)

    async def decrypt(self, data: bytes, init_key: Any, init_bytes: Callable[[], Awaitable[bytes | None]],
                      codecs: str | None) -> tuple[bytes, int | None]:
        """(`data` decrypted, samples checked) when its track is protected and a key is at
        hand; (`data`, None) otherwise. `init_bytes()` gives the init segment when needed.
        The AES work runs in a thread, off the event loop."""
        if self.decryptor is None:
            return data, None
        tc = self._tracks.get(init_key)
        if tc is None:
            init = await init_bytes()
            if init is None:
                return data, None
            tc = self._tracks[init_key] = track_crypto(init)
        if not tc.protected:
            return data, None
        clear = await asyncio.to_thread(self.decryptor.decrypt, tc, data)
        samples = await asyncio.to_thread(verify_media, clear, nal_kind(tc.kind, codecs))
        return clear, samples
