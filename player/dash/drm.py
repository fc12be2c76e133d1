"""What a manifest says about protection: the DRM system to use, the key IDs, the licence URL.

`drm_info(protections, ...)` reads a representation's ContentProtection descriptors: the
system (W3C ClearKey, which the player can really decrypt, before the Widevine and
PlayReady stubs), the key IDs (``cenc:default_KID``, else the KIDs of a version-1 ClearKey
``pssh``) and the licence URL (``dashif:Laurl`` / ``clearkey:Laurl`` resolved against the
manifest, or an override). `is_protected` says whether a representation is encrypted.

Acquiring the licence is `player.http.licences`; decrypting is `player.http.decryption`
(on `netem.cenc`'s primitives).
"""
from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urljoin

from netem import isobmff
from netem.errors import BoxError

CLEARKEY_IDS = {"1077efec-c0b2-4d02-ace3-3c1e52e2fb4b", "e2719d58-a985-b3c9-781a-b030af78d30e"}
WIDEVINE_ID = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
PLAYREADY_ID = "9a04f079-9840-4286-ab92-e65be0885f95"
SYSTEM_OF = {**{i: "clearkey" for i in CLEARKEY_IDS}, WIDEVINE_ID: "widevine", PLAYREADY_ID: "playready"}
PREFERENCE = ("clearkey", "widevine", "playready")
MP4PROTECTION = "urn:mpeg:dash:mp4protection:2011"
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
    except (binascii.Error, ValueError, BoxError):  # a malformed pssh only loses its KIDs (the default_KID says)
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
