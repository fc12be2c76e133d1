"""License acquisition and decryption for protected DASH content (the player's CDM stand-in).

* `drm_info(protections, ...)` reads what the manifest says: the system to use (W3C
  ClearKey, which we can really decrypt, before the Widevine and PlayReady stubs), the key
  IDs (``cenc:default_KID``, else the KIDs of a version-1 ClearKey ``pssh``) and the
  license URL (``dashif:Laurl`` / ``clearkey:Laurl`` resolved against the manifest, or
  an override).
* `LicenseClient.acquire()` runs the W3C ClearKey flow: POST
  ``{"kids": [<base64url>], "type": "temporary"}`` and read the JSON Web Key set
  ``{"keys": [{"kty": "oct", "kid", "k"}], "policy": {...}}``; for the Widevine/PlayReady
  stubs it POSTs the ``pssh`` as an opaque challenge and reads the policy only. The device
  declares its robustness and HDCP level in ``X-Robustness`` / ``X-HDCP``; the answer's
  ``policy`` (``max_height``, ``license_duration_s``) becomes a `License`. Transient
  failures (5xx, 429, timeouts, resets) are retried with exponential backoff and jitter;
  a 4xx other than 408/429, or a malformed answer, is final. Every failure is a
  `LicenseError` with a one-line message.
* `Decryptor` decrypts 'cenc' (AES-128-CTR) media segments with the license's keys (via
  `netem.cenc`, which needs the optional ``cryptography`` package) after reading the
  track's ``tenc`` (KID, IV size) from its init segment; `verify_media` checks that a
  (decrypted) segment is well formed: every ``trun`` sample lies inside its ``mdat`` and,
  for video, each sample is a chain of length-prefixed NAL units that tiles it exactly.

Times are presentation seconds (the player's clock, scaled by ``--time-scale``).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urljoin, urlsplit

from netem import isobmff
from netem.cenc import Protection
from netem.errors import DecryptError, LicenseError

CLEARKEY_IDS = {"1077efec-c0b2-4d02-ace3-3c1e52e2fb4b", "e2719d58-a985-b3c9-781a-b030af78d30e"}
WIDEVINE_ID = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
PLAYREADY_ID = "9a04f079-9840-4286-ab92-e65be0885f95"
SYSTEM_OF = {**{i: "clearkey" for i in CLEARKEY_IDS}, WIDEVINE_ID: "widevine", PLAYREADY_ID: "playready"}
PREFERENCE = ("clearkey", "widevine", "playready")
MP4PROTECTION = "urn:mpeg:dash:mp4protection:2011"
MAX_LICENSE_BYTES = 64 * 1024
DEFAULT_LICENSE_PATH = "/license/{system}"


# ---------------------------------------------------------------------------------------
# what the manifest says


@dataclass(frozen=True)
class DrmInfo:
    system: str                     # clearkey | widevine | playready
    kids: tuple[bytes, ...]         # 16-byte key IDs
    license_url: str | None
    pssh: bytes | None = None       # the system's pssh box, when the manifest carries it
    systems: tuple[str, ...] = ()   # every system the manifest names

    def to_dict(self) -> dict:
        return {"system": self.system, "kids": [b64url(k) for k in self.kids], "license_url": self.license_url,
                "systems": list(self.systems)}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    s = str(text).strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{text[:40]!r} is not base64url") from None


def is_protected(protections: Sequence[Any]) -> bool:
    """Whether a representation's ContentProtection descriptors say it is encrypted."""
    return any(cp.scheme_id_uri == MP4PROTECTION or cp.system_id or cp.default_kid for cp in protections)


def _kid_bytes(text: str) -> bytes | None:
    try:
        return uuid.UUID(text).bytes
    except (ValueError, AttributeError, TypeError):
        return None


def _pssh_kids(b64: str | None) -> list[bytes]:
    if not b64:
        return []
    try:
        data = base64.b64decode(b64, validate=False)
        out = []
        for box in isobmff.parse(data):
            if box.type == "pssh":
                out += isobmff.parse_pssh(box)["kids"]
        return out
    except Exception:  # a malformed pssh only loses its KIDs (the default_KID usually says)
        return []


def drm_info(protections: Sequence[Any], manifest_url: str | None, *, system: str | None = None,
             license_url: str | None = None) -> DrmInfo | None:
    """The DRM system, KIDs and license URL for a set of ContentProtection descriptors
    (None when unprotected). `system` forces a system; `license_url` overrides the URL."""
    if not is_protected(protections):
        return None
    named = {}
    kids: list[bytes] = []
    for cp in protections:
        if cp.default_kid:
            k = _kid_bytes(cp.default_kid)
            if k and k not in kids:
                kids.append(k)
        name = SYSTEM_OF.get((cp.system_id or "").lower())
        if name:
            named.setdefault(name, cp)
    for name in ("clearkey",):
        cp = named.get(name)
        if cp is not None:
            for k in _pssh_kids(cp.pssh):
                if k not in kids:
                    kids.append(k)
    systems = tuple(n for n in PREFERENCE if n in named)
    if system is not None:
        chosen = system
    elif systems:
        chosen = systems[0]
    else:  # only mp4protection / a KID: ClearKey is what this player can try
        chosen = "clearkey"
    cp = named.get(chosen)
    url = license_url
    if url is None and cp is not None and cp.license_url:
        url = cp.license_url.strip()
    if url is None:
        # no Laurl: abrlab's edge convention, /license/<system> on the manifest's origin
        url = DEFAULT_LICENSE_PATH.format(system=chosen)
    if manifest_url:
        url = urljoin(manifest_url, url)
    pssh = None
    if cp is not None and cp.pssh:
        try:
            pssh = base64.b64decode(cp.pssh)
        except (binascii.Error, ValueError):
            pssh = None
    return DrmInfo(chosen, tuple(kids), url, pssh, systems)


# ---------------------------------------------------------------------------------------
# licenses


@dataclass
class License:
    system: str
    keys: dict[bytes, bytes]
    policy: dict
    acquired_s: float                       # session time it arrived
    max_height: int | None = None
    duration_s: float | None = None         # None: no expiry

    @property
    def expires_s(self) -> float:
        return math.inf if self.duration_s is None else self.acquired_s + self.duration_s

    def allows(self, height: int | None) -> bool:
        """Whether the policy lets a representation of this height play (unknown: yes)."""
        return self.max_height is None or not height or height <= self.max_height

    def to_dict(self) -> dict:
        return {"system": self.system, "kids": [b64url(k) for k in self.keys], "policy": self.policy,
                "max_height": self.max_height, "license_duration_s": self.duration_s,
                "expires_s": None if self.duration_s is None else self.expires_s}


def parse_license(system: str, body: bytes, wanted: Sequence[bytes], now_s: float) -> License:
    """Check and read a license answer (untrusted): a JSON object as described above."""
    if len(body) > MAX_LICENSE_BYTES:
        raise LicenseError(f"license answer larger than {MAX_LICENSE_BYTES} bytes")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LicenseError("license answer is not JSON") from None
    if not isinstance(doc, dict):
        raise LicenseError("license answer is not a JSON object")
    keys: dict[bytes, bytes] = {}
    if system == "clearkey":
        raw = doc.get("keys")
        if not isinstance(raw, list) or not raw:
            raise LicenseError("ClearKey license has no 'keys'")
        for i, jwk in enumerate(raw[:64]):
            if not isinstance(jwk, dict) or jwk.get("kty", "oct") != "oct":
                raise LicenseError(f"ClearKey license key {i} is not an 'oct' JSON Web Key")
            try:
                kid, k = b64url_decode(jwk.get("kid", "")), b64url_decode(jwk.get("k", ""))
            except ValueError as exc:
                raise LicenseError(f"ClearKey license key {i}: {exc}") from None
            if len(kid) != 16 or len(k) != 16:
                raise LicenseError(f"ClearKey license key {i}: kid and k must be 16 bytes each")
            keys[kid] = k
        missing = [b64url(k) for k in wanted if k not in keys]
        if wanted and len(missing) == len(wanted):
            raise LicenseError(f"ClearKey license does not hold the requested key ID(s) {', '.join(missing)}")
    elif doc.get("status", "OK") != "OK":
        raise LicenseError(f"{system} license status {str(doc.get('status'))[:40]!r}")
    policy = doc.get("policy") or {}
    if not isinstance(policy, dict):
        raise LicenseError("license 'policy' is not an object")
    mh = policy.get("max_height")
    if mh is not None and (not isinstance(mh, int) or isinstance(mh, bool) or mh <= 0):
        raise LicenseError(f"license policy max_height must be a positive integer or null, got {mh!r}")
    dur = policy.get("license_duration_s")
    if dur is not None and (not isinstance(dur, (int, float)) or isinstance(dur, bool)
                            or not math.isfinite(dur) or dur <= 0):
        raise LicenseError(f"license policy license_duration_s must be positive seconds or null, got {dur!r}")
    return License(system, keys, policy, now_s, mh, None if dur is None else float(dur))


@dataclass
class RetryPolicy:
    attempts: int = 3
    timeout_s: float = 10.0          # presentation seconds per attempt
    backoff_s: float = 0.5
    backoff_max_s: float = 4.0
    seed: int = 0
    rng: random.Random = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.rng is None:
            self.rng = random.Random(f"abrlab-license:{self.seed}")

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter (half fixed, half random)."""
        base = min(self.backoff_max_s, self.backoff_s * (2 ** attempt))
        return base * (0.5 + 0.5 * self.rng.random())


class LicenseClient:
    """Acquires (and renews) the license for one `DrmInfo` over the player's session.

    `clock` has ``now()`` (presentation seconds), ``wall(s)`` (presentation → wall seconds)
    and ``async sleep(s)``; `emit(kind, **data)` receives "license_request", "retry" and
    "license" events; `prepare(url, headers)` may decorate a request (CMCD) and returns
    the URL to use.
    """

    def __init__(self, session, info: DrmInfo, clock, *, robustness: str | None = None, hdcp: str | None = None,
                 retry: RetryPolicy | None = None, emit: Callable[..., None] | None = None,
                 prepare: Callable[[str, dict], str] | None = None) -> None:
        self.session = session
        self.info = info
        self.clock = clock
        self.robustness = robustness
        self.hdcp = hdcp
        self.retry = retry or RetryPolicy()
        self.emit = emit or (lambda kind, **data: None)
        self.prepare = prepare
        self.license: License | None = None

    def _request(self) -> tuple[bytes, str]:
        if self.info.system == "clearkey":
            if not self.info.kids:
                raise LicenseError("protected content names no key ID (cenc:default_KID or a ClearKey pssh)")
            doc = {"kids": [b64url(k) for k in self.info.kids], "type": "temporary"}
            return json.dumps(doc).encode(), "application/json"
        challenge = self.info.pssh or b"abrlab-license-challenge"
        return challenge, "application/octet-stream"

    async def acquire(self, renewal: bool = False) -> License:
        import aiohttp

        url = self.info.license_url
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise LicenseError(f"no usable license URL for {self.info.system} ({url!r})")
        body, ctype = self._request()
        last = "no attempt"
        for attempt in range(self.retry.attempts):
            headers = {"Content-Type": ctype}
            if self.robustness:
                headers["X-Robustness"] = self.robustness
            if self.hdcp:
                headers["X-HDCP"] = self.hdcp
            req_url = self.prepare(url, headers) if self.prepare else url
            t0 = self.clock.now()
            self.emit("license_request", system=self.info.system, url=url, attempt=attempt + 1, renewal=renewal)
            status = None
            try:
                async with asyncio.timeout(self.clock.wall(self.retry.timeout_s)):
                    async with self.session.post(_url_as_encoded(req_url), data=body, headers=headers) as resp:
                        status = resp.status
                        if resp.content_length is not None and resp.content_length > MAX_LICENSE_BYTES:
                            raise LicenseError(f"license answer of {resp.content_length} bytes is too large")
                        data = await resp.content.read(MAX_LICENSE_BYTES + 1)
                if status == 200:
                    lic = parse_license(self.info.system, data, self.info.kids, self.clock.now())
                    self.license = lic
                    self.emit("license", system=lic.system, url=url, latency_s=self.clock.now() - t0,
                              renewal=renewal, kids=[b64url(k) for k in lic.keys], policy=lic.policy,
                              max_height=lic.max_height, license_duration_s=lic.duration_s)
                    return lic
                detail = _error_field(data)
                last = f"HTTP {status}{': ' + detail if detail else ''}"
                if status not in (408, 429) and status < 500:
                    raise LicenseError(f"license server refused the request ({last}) at {url}", status=status)
            except LicenseError:
                raise
            except TimeoutError:
                last = f"timed out after {self.retry.timeout_s:g} s"
            except (aiohttp.ClientError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}".split("\n")[0][:200]
            if attempt + 1 < self.retry.attempts:
                delay = self.retry.delay(attempt)
                self.emit("retry", what="license", url=url, attempt=attempt + 1, reason=last, backoff_s=delay)
                await self.clock.sleep(delay)
        raise LicenseError(f"license request to {url} failed after {self.retry.attempts} attempts: {last}",
                           final=False)


def _error_field(data: bytes) -> str:
    """The "error" string of a JSON licence-server response ("" when there is none)."""
    try:
        doc = json.loads(data.decode("utf-8", "replace"))
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return doc["error"][:160]
    except (json.JSONDecodeError, ValueError):
        pass
    return ""


def _url_as_encoded(url: str):
    """The URL exactly as the manifest wrote it (aiohttp would otherwise re-quote it)."""
    from yarl import URL

    return URL(url, encoded=True)


# ---------------------------------------------------------------------------------------
# decryption


def crypto_available() -> bool:
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
    except isobmff.BoxError as exc:
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
    """Decrypts 'cenc' segments with the keys of a license."""

    def __init__(self, keys: dict[bytes, bytes]) -> None:
        if not crypto_available():
            raise DecryptError("decryption needs the optional 'cryptography' package (pip install abrlab[drm])")
        self._prot = {kid: Protection(key, kid) for kid, key in keys.items()}

    def decrypt(self, track: TrackCrypto, data: bytes) -> bytes:
        if not track.protected:
            return data
        prot = self._prot.get(track.kid) if track.kid else None
        if prot is None and len(self._prot) == 1 and track.kid is None:
            prot = next(iter(self._prot.values()))
        if prot is None:
            raise DecryptError(f"no key for KID {b64url(track.kid) if track.kid else '?'} in the license")
        try:
            return prot.decrypt_segment(data, track.iv_size)
        except (isobmff.BoxError, ValueError) as exc:
            raise DecryptError(f"cannot decrypt: {exc}") from None


def verify_media(data: bytes, kind: str = "unknown", nal_length_size: int = 4) -> int:
    """Check a media segment (or moof+mdat run): samples inside their mdat and, for video,
    NAL length chains tiling every sample. Returns the number of samples checked."""
    try:
        boxes = isobmff.parse(data)
    except isobmff.BoxError as exc:
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
            except isobmff.BoxError as exc:
                raise DecryptError(str(exc)) from None
            pos = tfhd.get("base_data_offset", moof.offset) + (trun["data_offset"] or 0)
            for size in trun["sizes"]:
                if pos < lo or pos + size > hi:
                    raise DecryptError(f"sample at {pos} ({size} bytes) lies outside its mdat [{lo}, {hi})")
                if kind == "video":
                    q, end = pos, pos + size
                    while q < end:
                        if q + nal_length_size > end:
                            raise DecryptError(f"truncated NAL length in the sample at {pos}")
                        n = int.from_bytes(data[q:q + nal_length_size], "big")
                        q += nal_length_size + n
                        if n == 0 or q > end:
                            raise DecryptError(f"NAL units do not tile the sample at {pos}")
                pos += size
                checked += 1
    return checked
