"""License endpoints of the emulated edge: W3C ClearKey for real, Widevine/PlayReady as stubs.

* ``POST /license/clearkey`` takes the W3C ClearKey license request
  ``{"kids": ["<base64url>", ...], "type": "temporary"}`` and answers
  ``{"keys": [{"kty": "oct", "kid": ..., "k": ...}], "type": "temporary", "policy": {...}}``
  with the keys it knows (base64url, no padding). None of the KIDs known → 403 with a JSON
  ``{"error": ...}``; a malformed request → 400.
* ``POST /license/widevine`` and ``POST /license/playready`` take an opaque challenge
  (1 byte to 64 KiB) and answer a JSON ``{"type", "status": "OK", "kids", "policy"}``: they
  do not implement either DRM system; they let a player exercise license round trips,
  policies, latency and failures.

The policy depends on what the client declares: robustness in the ``X-Robustness`` header
(or the JSON field ``robustness``): ``SW_SECURE_CRYPTO`` < ``SW_SECURE_DECODE`` <
``HW_SECURE_CRYPTO`` < ``HW_SECURE_DECODE`` < ``HW_SECURE_ALL`` (PlayReady's ``150``,
``2000``, ``3000`` map to the first, second and last); and HDCP in ``X-HDCP`` (or
``hdcp``): ``none``, ``1.4``, ``2.2`` (any ``N.N``). Undeclared means the lowest. A policy
caps the height (``max_height``, null = no cap) by each and sets ``license_duration_s``
(null = unlimited). Built-in policies: ``open`` (no caps; the default) and ``studio``
(robustness: SW_SECURE_CRYPTO 480, SW_SECURE_DECODE 720, HW_SECURE_CRYPTO 1080; HDCP: none
480, 1.4 1080; license 3600 s). A JSON file can give the same fields.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from netem.errors import InputError

ROBUSTNESS_LEVELS = ("SW_SECURE_CRYPTO", "SW_SECURE_DECODE", "HW_SECURE_CRYPTO", "HW_SECURE_DECODE", "HW_SECURE_ALL")
_PLAYREADY_LEVELS = {"150": "SW_SECURE_CRYPTO", "2000": "SW_SECURE_DECODE", "3000": "HW_SECURE_ALL"}
MAX_BODY_BYTES = 64 * 1024
MAX_KIDS = 64
KINDS = ("clearkey", "widevine", "playready")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_\-+/]{1,128}={0,2}", text):
        raise ValueError("not base64url")
    s = text.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


@dataclass(frozen=True)
class LicensePolicy:
    """Caps by declared robustness and HDCP, and a license duration (None = none)."""

    name: str = "open"
    license_duration_s: float | None = None
    max_height_by_robustness: Mapping[str, int | None] = field(default_factory=dict)
    max_height_by_hdcp: Mapping[str, int | None] = field(default_factory=dict)  # keys "none", "1.4", "2.2"

    def evaluate(self, robustness: str, hdcp: float | None) -> dict:
        caps = []
        if robustness in self.max_height_by_robustness:
            caps.append(self.max_height_by_robustness[robustness])
        if self.max_height_by_hdcp:  # the cap of the highest HDCP threshold reached
            cap = self.max_height_by_hdcp.get("none")
            for key in sorted((k for k in self.max_height_by_hdcp if k != "none"), key=float):
                if hdcp is not None and hdcp >= float(key):
                    cap = self.max_height_by_hdcp[key]
            caps.append(cap)
        real = [c for c in caps if c is not None]
        return {
            "name": self.name,
            "robustness": robustness,
            "hdcp": "none" if hdcp is None else f"{hdcp:.1f}",
            "max_height": min(real) if real else None,
            "license_duration_s": self.license_duration_s,
            "persistent": False,
        }


POLICIES = {
    "open": LicensePolicy(),
    "studio": LicensePolicy(
        name="studio", license_duration_s=3600.0,
        max_height_by_robustness={"SW_SECURE_CRYPTO": 480, "SW_SECURE_DECODE": 720, "HW_SECURE_CRYPTO": 1080,
                                  "HW_SECURE_DECODE": None, "HW_SECURE_ALL": None},
        max_height_by_hdcp={"none": 480, "1.4": 1080, "2.2": None}),
}


def load_policy(spec: str | None, license_duration_s: float | None = None) -> LicensePolicy:
    """A built-in policy name or a JSON file with the policy's fields."""
    if spec is None or spec == "":
        pol = POLICIES["open"]
    elif spec in POLICIES:
        pol = POLICIES[spec]
    else:
        p = Path(spec)
        if not p.is_file():
            raise InputError(f"not a built-in policy ({', '.join(POLICIES)}) nor a file", where=spec)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read policy JSON: {exc}", where=spec) from None
        pol = policy_from_dict(doc, where=spec)
    if license_duration_s is not None:
        if not (math.isfinite(license_duration_s) and license_duration_s > 0):
            raise InputError("license duration must be positive seconds", where="--license-duration")
        pol = LicensePolicy(pol.name, float(license_duration_s), pol.max_height_by_robustness, pol.max_height_by_hdcp)
    return pol


def policy_from_dict(doc, where: str = "policy") -> LicensePolicy:
    if not isinstance(doc, dict):
        raise InputError("policy must be a JSON object", where=where)
    unknown = set(doc) - {"name", "license_duration_s", "max_height_by_robustness", "max_height_by_hdcp"}
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(sorted(unknown))}", where=where)
    dur = doc.get("license_duration_s")
    if dur is not None and (not isinstance(dur, (int, float)) or not math.isfinite(dur) or dur <= 0):
        raise InputError("field 'license_duration_s' must be positive seconds or null", where=where)

    def caps(key: str, valid) -> dict:
        raw = doc.get(key, {})
        if not isinstance(raw, dict):
            raise InputError(f"field {key!r} must be an object", where=where)
        out = {}
        for k, v in raw.items():
            if not valid(k):
                raise InputError(f"field {key!r} has an unknown level {k!r}", where=where)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise InputError(f"field {key!r}[{k!r}] must be a positive height or null", where=where)
            out[k] = v
        return out

    return LicensePolicy(
        name=str(doc.get("name", Path(where).stem)), license_duration_s=None if dur is None else float(dur),
        max_height_by_robustness=caps("max_height_by_robustness", lambda k: k in ROBUSTNESS_LEVELS),
        max_height_by_hdcp=caps("max_height_by_hdcp", lambda k: k == "none" or bool(re.fullmatch(r"\d\.\d", k))))


def parse_robustness(value) -> str:
    if value is None or value == "":
        return ROBUSTNESS_LEVELS[0]
    if not isinstance(value, str):
        raise ValueError("robustness must be a string")
    v = value.strip().upper()
    if v in _PLAYREADY_LEVELS:
        return _PLAYREADY_LEVELS[v]
    if v not in ROBUSTNESS_LEVELS:
        raise ValueError(f"unknown robustness {value!r} (known: {', '.join(ROBUSTNESS_LEVELS)})")
    return v


def parse_hdcp(value) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("hdcp must be a string like '1.4'")
    v = str(value).strip().lower()
    if v in ("none", "0", "no", "off"):
        return None
    v = v.removeprefix("hdcp").removeprefix("_v").removeprefix("v").replace("_", ".")
    if not re.fullmatch(r"\d(\.\d)?", v):
        raise ValueError(f"unknown HDCP level {value!r} (use none, 1.4, 2.2, ...)")
    return float(v)


class LicenseServer:
    """Sans-IO license logic plus an aiohttp handler that adds latency and failures.

    `keys` maps KID → key (16 bytes each); a `netem.cenc.Protection` (or a list of them)
    is accepted too. `latency_s` (trace seconds) delays every answer, `failure_p` makes an
    answer fail with `failure_status`.
    """

    def __init__(self, keys=None, *, policy: LicensePolicy | None = None, latency_s: float = 0.0,
                 failure_p: float = 0.0, failure_status: int = 500, seed: int = 0) -> None:
        self.keys: dict[bytes, bytes] = {}
        for kid, key in _iter_keys(keys):
            self.keys[bytes(kid)] = bytes(key)
        self.policy = policy or POLICIES["open"]
        if not (0.0 <= failure_p <= 1.0):
            raise InputError(f"license failure probability must be in [0, 1], got {failure_p!r}")
        if not (math.isfinite(latency_s) and latency_s >= 0):
            raise InputError(f"license latency must be non-negative seconds, got {latency_s!r}")
        self.latency_s = float(latency_s)
        self.failure_p = float(failure_p)
        self.failure_status = int(failure_status)
        self.rng = random.Random(f"abrlab-license:{seed}")

    def should_fail(self) -> bool:
        return self.failure_p > 0 and self.rng.random() < self.failure_p

    def handle(self, kind: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict]:
        """Answer one license request: (HTTP status, JSON document)."""
        if kind not in KINDS:
            return 404, {"error": f"unknown license system {kind!r}; known: {', '.join(KINDS)}"}
        if len(body) > MAX_BODY_BYTES:
            return 413, {"error": f"license request larger than {MAX_BODY_BYTES} bytes"}
        doc: dict = {}
        if kind == "clearkey":
            try:
                doc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                return 400, {"error": "ClearKey license request must be a JSON object"}
            if not isinstance(doc, dict):
                return 400, {"error": "ClearKey license request must be a JSON object"}
        elif not body:
            return 400, {"error": "empty license challenge"}
        try:
            robustness = parse_robustness(headers.get("X-Robustness") or doc.get("robustness"))
        except ValueError as exc:
            return 400, {"error": f"X-Robustness: {exc}"}
        try:
            hdcp = parse_hdcp(headers.get("X-HDCP") or doc.get("hdcp"))
        except ValueError as exc:
            return 400, {"error": f"X-HDCP: {exc}"}
        policy = self.policy.evaluate(robustness, hdcp)
        if kind != "clearkey":
            return 200, {"type": kind, "status": "OK", "kids": [b64url(k) for k in self.keys],
                         "challenge_sha256": hashlib.sha256(body).hexdigest(), "policy": policy}
        kids = doc.get("kids")
        if not isinstance(kids, list) or not kids:
            return 400, {"error": "field 'kids' must be a non-empty list of base64url key IDs"}
        if len(kids) > MAX_KIDS:
            return 400, {"error": f"field 'kids' has more than {MAX_KIDS} entries"}
        ltype = doc.get("type", "temporary")
        if ltype not in ("temporary", "persistent-license"):
            return 400, {"error": f"field 'type' must be 'temporary' or 'persistent-license', got {ltype!r}"}
        out, unknown = [], []
        for raw in kids:
            try:
                kid = b64url_decode(raw)
            except ValueError:
                return 400, {"error": f"key ID {str(raw)[:40]!r} is not base64url"}
            if len(kid) != 16:
                return 400, {"error": f"key ID {raw!r} is {len(kid)} bytes, expected 16"}
            if kid in self.keys:
                out.append({"kty": "oct", "kid": b64url(kid), "k": b64url(self.keys[kid])})
            else:
                unknown.append(raw)
        if not out:
            return 403, {"error": f"unknown key ID(s): {', '.join(map(str, unknown))}"}
        return 200, {"keys": out, "type": ltype, "policy": policy}

    async def aiohttp_handler(self, request, kind: str, *, extra_delay_s: float = 0.0, fail_status: int | None = None,
                              time_scale: float = 1.0):
        """Answer an aiohttp request (latency and failures applied; times are trace seconds)."""
        import asyncio

        from aiohttp import web

        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            status, doc = 413, {"error": f"license request larger than {MAX_BODY_BYTES} bytes"}
            body = b""
        else:
            body = await request.content.read(MAX_BODY_BYTES + 1)
            status, doc = 0, {}
        delay = (self.latency_s + extra_delay_s) / time_scale
        if delay > 0:
            await asyncio.sleep(delay)
        if not status:
            if fail_status is not None:
                status, doc = fail_status, {"error": "injected license failure"}
            elif self.should_fail():
                status, doc = self.failure_status, {"error": "injected license failure"}
            else:
                status, doc = self.handle(kind, body, request.headers)
        return web.json_response(doc, status=status)


def _iter_keys(keys) -> Iterable[tuple[bytes, bytes]]:
    if keys is None:
        return []
    if isinstance(keys, Mapping):
        return list(keys.items())
    if hasattr(keys, "kid") and hasattr(keys, "key"):
        return [(keys.kid, keys.key)]
    out = []
    for item in keys:
        if hasattr(item, "kid") and hasattr(item, "key"):
            out.append((item.kid, item.key))
        else:
            kid, key = item
            out.append((kid, key))
    return out
