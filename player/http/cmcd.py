"""Common Media Client Data (CTA-5004): the keys the player sends with every request.

The player builds one `CmcdData` per request in its own units (bits per second, seconds,
bytes) and this module converts at the edge to CMCD's units (kbit/s, milliseconds) and
syntax, either as a query parameter (``CMCD=`` + URL-encoded payload, keys sorted) or as
the four headers ``CMCD-Object``, ``CMCD-Request``, ``CMCD-Session``, ``CMCD-Status``
(keys sorted within each header), as CTA-5004 §2 and §3 specify:

====  ======================================  =============  =========================
key   meaning                                 CMCD unit      header
====  ======================================  =============  =========================
br    encoded bitrate of the object           kbit/s (int)   CMCD-Object
d     object duration                         ms (int)       CMCD-Object
ot    object type: m, a, v, av, i, c, tt, k   token          CMCD-Object
tb    top bitrate the client may use          kbit/s (int)   CMCD-Object
bl    buffer length                           ms, ×100       CMCD-Request
mtp   measured throughput                     kbit/s, ×100   CMCD-Request
nor   next object request (relative URL)      string         CMCD-Request
nrr   next range request ("first-last")       string         CMCD-Request
su    startup / rebuffering: needed urgently  boolean        CMCD-Request
cid   content id                              string         CMCD-Session
sf    streaming format (d = DASH)             token          CMCD-Session
sid   session id (a UUID)                     string         CMCD-Session
st    stream type (v = VOD)                   token          CMCD-Session
bs    buffer starvation since last request    boolean        CMCD-Status
====  ======================================  =============  =========================

Booleans are sent as the bare key when true and omitted when false; a value that is not
known (e.g. no throughput measured yet) is omitted, never sent as 0.
"""
from __future__ import annotations

import math
import posixpath
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from player.http.fetcher import Resource

MODES = ("query", "headers")
OBJECT_TYPES = ("m", "a", "v", "av", "i", "c", "tt", "k", "o")
HEADER_OF = {
    "br": "CMCD-Object", "d": "CMCD-Object", "ot": "CMCD-Object", "tb": "CMCD-Object",
    "bl": "CMCD-Request", "dl": "CMCD-Request", "mtp": "CMCD-Request", "nor": "CMCD-Request",
    "nrr": "CMCD-Request", "su": "CMCD-Request",
    "cid": "CMCD-Session", "pr": "CMCD-Session", "sf": "CMCD-Session", "sid": "CMCD-Session",
    "st": "CMCD-Session", "v": "CMCD-Session",
    "bs": "CMCD-Status", "rtp": "CMCD-Status",
}
TOKEN_KEYS = {"ot", "sf", "st"}
STRING_KEYS = {"cid", "sid", "nor", "nrr"}
MAX_STRING = 64  # CTA-5004 limits cid and sid to 64 characters


@dataclass(frozen=True)
class CmcdData:
    """What the player knows when it sends one request (project units; None = unknown)."""

    ot: str                                # object type (see OBJECT_TYPES)
    sid: str
    cid: str | None = None
    br_bps: float | None = None            # encoded bitrate of the object
    d_s: float | None = None               # object duration
    tb_bps: float | None = None            # top bitrate allowed now
    bl_s: float | None = None              # buffer length
    mtp_bps: float | None = None           # measured throughput
    nor: str | None = None                 # next object, relative to this request's URL
    nrr: tuple[int, int] | None = None     # next byte range (inclusive)
    su: bool = False                       # startup or rebuffering
    bs: bool = False                       # the buffer ran dry since the last request

    def keys(self) -> dict[str, object]:
        """CMCD keys in CMCD units (integers, tokens, strings, True for a set boolean)."""
        if self.ot not in OBJECT_TYPES:
            raise ValueError(f"CMCD object type must be one of {', '.join(OBJECT_TYPES)}, got {self.ot!r}")
        out: dict[str, object] = {"ot": self.ot, "sid": self.sid[:MAX_STRING], "sf": "d", "st": "v"}
        if self.cid:
            out["cid"] = self.cid[:MAX_STRING]
        if _ok(self.br_bps):
            out["br"] = int(round(self.br_bps / 1000.0))
        if _ok(self.d_s):
            out["d"] = int(round(self.d_s * 1000.0))
        if _ok(self.tb_bps):
            out["tb"] = int(round(self.tb_bps / 1000.0))
        if _ok(self.bl_s):
            out["bl"] = int(round(self.bl_s * 10.0)) * 100          # ms, rounded to 100 ms
        if _ok(self.mtp_bps):
            out["mtp"] = int(round(self.mtp_bps / 100_000.0)) * 100  # kbit/s, rounded to 100
        if self.nor:
            out["nor"] = self.nor
        if self.nrr is not None:
            out["nrr"] = f"{int(self.nrr[0])}-{int(self.nrr[1])}"
        if self.su:
            out["su"] = True
        if self.bs:
            out["bs"] = True
        return out


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x >= 0


def _value(key: str, v: object) -> str | None:
    """One member `key=value` (or the bare key for true); None to omit."""
    if v is True:
        return key
    if v is False or v is None:
        return None
    if key in TOKEN_KEYS:
        return f"{key}={v}"
    if key in STRING_KEYS or isinstance(v, str):
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return f'{key}="{s}"'
    return f"{key}={int(v)}" if isinstance(v, (int, float)) else None


def serialize(keys: dict[str, object]) -> str:
    """`key=value` members, keys sorted alphabetically, comma separated (CTA-5004 §3.2)."""
    members = (_value(k, keys[k]) for k in sorted(keys))
    return ",".join(m for m in members if m)


def query_url(url: str, keys: dict[str, object]) -> str:
    """`url` with ``CMCD=<url-encoded payload>`` appended (an already-encoded URL string)."""
    payload = serialize(keys)
    if not payload:
        return url
    base, hash_, frag = url.partition("#")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}CMCD={quote(payload, safe='')}{hash_}{frag}"


def headers(keys: dict[str, object]) -> dict[str, str]:
    """The CMCD headers carrying `keys` (empty headers are not sent)."""
    groups: dict[str, dict[str, object]] = {}
    for k, v in keys.items():
        groups.setdefault(HEADER_OF.get(k, "CMCD-Request"), {})[k] = v
    out = {}
    for name, g in groups.items():
        text = serialize(g)
        if text:
            out[name] = text
    return out


def relative(from_url: str, to_url: str) -> str:
    """`to_url` relative to the directory of `from_url` (same origin), for ``nor``; the
    absolute URL when the origins differ."""
    a, b = urlsplit(from_url), urlsplit(to_url)
    if (a.scheme, a.netloc) != (b.scheme, b.netloc):
        return to_url
    rel = posixpath.relpath(b.path or "/", posixpath.dirname(a.path or "/") or "/")
    if b.query:
        rel += "?" + b.query
    return quote(rel, safe="/?=&%-._~")


def new_session_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class CmcdConfig:
    """How (and whether) to send CMCD: `mode` is "query" or "headers"."""

    mode: str
    sid: str
    cid: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"CMCD mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def apply(self, url: str, hdrs: dict[str, str], data: CmcdData) -> str:
        """Attach `data` to a request: returns the URL to use; headers are added to `hdrs`."""
        keys = data.keys()
        if self.mode == "query":
            return query_url(url, keys)
        hdrs.update(headers(keys))
        return url


@dataclass(frozen=True)
class PlayerStatus:
    """What the player knows of its own state when it sends a request (None = unknown)."""

    buffer_s: float | None = None
    throughput_bps: float | None = None
    top_bitrate_bps: float | None = None
    urgent: bool = True                    # starting up or stalled
    starved: bool = False                  # the buffer ran dry since the last media request


def request_data(cfg: CmcdConfig, res: Resource, url: str, alt: int, status: PlayerStatus) -> CmcdData:
    """The CMCD data of one request for `res` at `url` on alternative `alt`: the object's
    type, bitrate and duration, the next object (nor/nrr), the player's status. A licence
    request carries only the session keys."""
    if res.object_type == "k":
        return CmcdData(ot="k", sid=cfg.sid, cid=cfg.cid)
    nor = nrr = None
    nxt = res.locate_next(alt) if res.locate_next is not None else None
    if nxt is not None:
        next_url, next_range = nxt
        if next_url != url:
            nor = relative(url, next_url)
        nrr = next_range
    return CmcdData(ot=res.object_type, sid=cfg.sid, cid=cfg.cid, br_bps=res.bitrate_bps, d_s=res.duration_s,
                    tb_bps=status.top_bitrate_bps, bl_s=status.buffer_s, mtp_bps=status.throughput_bps, nor=nor,
                    nrr=nrr, su=status.urgent, bs=status.starved)
