"""The licence client: acquires and renews the licence for protected content, through the
player's one fetcher (`player.http.fetcher`) and its retry policy.

* `LicenseClient.acquire()` runs the W3C ClearKey flow: POST
  ``{"kids": [<base64url>], "type": "temporary"}`` and read the JSON Web Key set
  ``{"keys": [{"kty": "oct", "kid", "k"}], "policy": {...}}``; for the Widevine/PlayReady
  stubs it POSTs the ``pssh`` as an opaque challenge and reads the policy only. The device
  declares its robustness and HDCP level in ``X-Robustness`` / ``X-HDCP``; the answer's
  ``policy`` (``max_height``, ``license_duration_s``) becomes a `License`. Transient
  failures (5xx, 408, 429, timeouts, resets) are retried as the policy says
  (`HttpConfig.license_retry`: a few attempts); any other 4xx, or a malformed answer, is
  final. Every failure is a `LicenseError` with a one-line message.
* `LicenseClient.keep_renewed(licence)` renews at a fraction of the licence duration, and
  retries a failed renewal until the licence expires.
* `parse_license` checks an answer (untrusted input) and reads it.

What the manifest says about protection (system, key IDs, licence URL) is `player.dash.drm`.
Times are presentation seconds (the player's clock).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable, Sequence
from urllib.parse import urlsplit

import numpy as np

from netem.errors import LicenseError, PlaybackError
from player.core.events import Event, LicenseFailed, LicenseGranted, LicenseRequest
from player.dash.drm import DrmInfo, b64url, b64url_decode
from player.http.config import RetryPolicy
from player.http.fetcher import FetchFailed, Fetcher, NotFound, Resource

MAX_LICENSE_BYTES = 64 * 1024


@dataclass
class License:
    system: str
    keys: dict[bytes, bytes]
    policy: dict
    acquired_s: float                       # player time it arrived
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


def allowed_rungs(lic: License, heights: np.ndarray, device_mask: np.ndarray) -> tuple[np.ndarray, bool]:
    """The rungs both the device and the licence policy allow, and whether none was (then the
    lowest rung the device allows stays, so the session can go on)."""
    both = device_mask & np.array([lic.allows(int(h)) for h in heights], dtype=bool)
    if both.any():
        return both, False
    lowest = np.zeros_like(device_mask)
    lowest[int(np.flatnonzero(device_mask)[0])] = True
    return lowest, True


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


def error_text(data: str) -> str:
    """The ``error`` of a JSON error answer ``{"error": "..."}``, else ""."""
    try:
        doc = json.loads(data)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return doc["error"][:160]
    except (json.JSONDecodeError, ValueError):
        pass
    return ""


class LicenseClient:
    """Acquires (and renews) the license for one `DrmInfo` through the player's fetcher.

    `emit(event)` receives a `LicenseRequest` (each attempt), `LicenseGranted` and
    `LicenseFailed` events; the fetcher reports the requests and retries themselves.
    """

    def __init__(self, fetcher: Fetcher, info: DrmInfo, *, robustness: str | None = None, hdcp: str | None = None,
                 retry: RetryPolicy, emit: Callable[[Event], None]) -> None:
        self.fetcher = fetcher
        self.info = info
        self.robustness = robustness
        self.hdcp = hdcp
        self.retry = retry
        self.emit = emit
        self.license: License | None = None

    def _challenge(self) -> tuple[bytes, str]:
        if self.info.system == "clearkey":
            if not self.info.kids:
                raise LicenseError("protected content names no key ID (cenc:default_KID or a ClearKey pssh)")
            doc = {"kids": [b64url(k) for k in self.info.kids], "type": "temporary"}
            return json.dumps(doc).encode(), "application/json"
        challenge = self.info.pssh or b"abrlab-license-challenge"
        return challenge, "application/octet-stream"

    async def acquire(self, renewal: bool = False) -> License:
        """One licence (a renewal when `renewal`); LicenseError when it cannot be had."""
        try:
            lic = await self._acquire(renewal)
        except LicenseError as exc:
            self.emit(LicenseFailed(self.fetcher.clock.now(), self.info.system, str(exc), exc.final, renewal))
            raise
        self.license = lic
        return lic

    async def _acquire(self, renewal: bool) -> License:
        url = self.info.license_url
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise LicenseError(f"no usable license URL for {self.info.system} ({url!r})")
        payload, ctype = self._challenge()
        headers = {"Content-Type": ctype}
        if self.robustness:
            headers["X-Robustness"] = self.robustness
        if self.hdcp:
            headers["X-HDCP"] = self.hdcp
        clock = self.fetcher.clock
        t0 = clock.now()
        res = Resource("license", lambda alt: (url, None), 1, MAX_LICENSE_BYTES, object_type="k", method="POST",
                       payload=payload, headers=headers, retry=self.retry,
                       on_attempt=lambda n: self.emit(LicenseRequest(clock.now(), self.info.system, url, n, renewal)))
        try:
            body = await self.fetcher.fetch(res)
        except NotFound:
            raise LicenseError(f"license server refused the request (HTTP 404) at {url}", status=404) from None
        except FetchFailed as exc:
            if exc.permanent and exc.status is not None:
                detail = error_text(exc.detail)
                raise LicenseError(f"license server refused the request (HTTP {exc.status}"
                                   f"{': ' + detail if detail else ''}) at {url}", status=exc.status) from None
            if exc.permanent:
                raise LicenseError(f"license answer unusable: {exc}") from None
            raise LicenseError(f"license request failed: {exc}", final=False) from None
        lic = parse_license(self.info.system, body.data, self.info.kids, clock.now())
        self.emit(LicenseGranted(clock.now(), lic.system, url, clock.now() - t0, renewal, [b64url(k) for k in lic.keys],
                                 lic.policy, lic.max_height, lic.duration_s))
        return lic

    async def keep_renewed(self, lic: License, renew_at: float, on_renewed: Callable[[License], None]) -> None:
        """Renew at `renew_at` × the licence duration, retrying (with the policy's backoff)
        until it expires; returns when a licence without expiry arrives. Raises
        PlaybackError when the licence expires unrenewed or the server refuses."""
        clock = self.fetcher.clock
        at = lic.acquired_s + renew_at * lic.duration_s if lic.duration_s else math.inf
        expires = lic.expires_s
        tries = 0
        while math.isfinite(at):
            await clock.sleep(at - clock.now())
            try:
                new = await self.acquire(renewal=True)
            except LicenseError as exc:
                now = clock.now()
                if now >= expires or exc.final:
                    raise PlaybackError(f"license could not be renewed before it expired at {expires:.1f} s: "
                                        f"{exc}") from None
                tries += 1
                at = now + min(self.retry.delay(tries), max(0.0, (expires - now) / 2))
                continue
            on_renewed(new)
            lic, tries = new, 0
            at = lic.acquired_s + renew_at * lic.duration_s if lic.duration_s else math.inf
            expires = lic.expires_s
