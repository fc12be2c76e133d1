"""Device-class profiles: what a device can decode and show, and how much it buffers.

A profile turns into a mask of allowed representations plus buffer settings, the same way
in the simulator and in the HTTP player (ExoPlayer's TrackSelector constraints play this
part there). Custom profiles come from a TOML or JSON file with the same fields.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from netem.content import Content
from netem.errors import InputError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

ROBUSTNESS = ("SW_SECURE_CRYPTO", "SW_SECURE_DECODE", "HW_SECURE_CRYPTO", "HW_SECURE_DECODE", "HW_SECURE_ALL")
HDCP = ("none", "1.4", "2.2", "2.3")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    screen_width: int = 1920
    screen_height: int = 1080
    max_frame_rate: float = 60.0
    codecs: tuple[str, ...] = ("avc1", "avc3", "mp4a")   # decodable codec prefixes (from @codecs)
    max_bitrate_bps: float | None = None
    drm_robustness: str = "SW_SECURE_CRYPTO"
    hdcp: str = "none"
    buffer_target_s: float = 30.0     # the cap: no request while a whole segment would not fit
    startup_threshold_s: float = 0.0  # playback starts at this much buffer (0: the first segment)

    def __post_init__(self) -> None:
        if self.drm_robustness not in ROBUSTNESS:
            raise InputError(f"drm_robustness must be one of {', '.join(ROBUSTNESS)}", where=self.name)
        if self.hdcp not in HDCP:
            raise InputError(f"hdcp must be one of {', '.join(HDCP)}", where=self.name)
        if self.buffer_target_s <= 0 or self.screen_height <= 0 or self.screen_width <= 0:
            raise InputError("buffer_target_s and screen size must be positive", where=self.name)

    def allows(self, width: int, height: int, frame_rate: float, codec: str, bitrate_bps: float) -> bool:
        """Whether one representation is playable here; unknown sizes (0) are allowed."""
        long_side, short_side = max(width, height), min(width, height)
        screen_long, screen_short = max(self.screen_width, self.screen_height), min(self.screen_width, self.screen_height)
        if long_side and (long_side > screen_long or short_side > screen_short):
            return False
        if frame_rate and frame_rate > self.max_frame_rate + 1e-6:
            return False
        if self.max_bitrate_bps is not None and bitrate_bps > self.max_bitrate_bps:
            return False
        if codec:
            prefixes = [c.split(".")[0].strip() for c in codec.split(",") if c.strip()]
            if any(p not in self.codecs for p in prefixes):
                return False
        return True

    def mask(self, content: Content) -> np.ndarray:
        """Allowed rungs of a content; if nothing is allowed, the lowest rung stays (a
        device that can play nothing should still say so by playing the least)."""
        m = np.array([self.allows(r.width, r.height, r.frame_rate, r.codec, r.bitrate_bps) for r in content.rungs])
        if not m.any():
            m[0] = True
        return m


BUILTIN: dict[str, DeviceProfile] = {
    "desktop": DeviceProfile("desktop", 2560, 1440, 60.0, ("avc1", "avc3", "vp09", "av01", "mp4a", "opus"),
                             drm_robustness="SW_SECURE_CRYPTO", hdcp="1.4", buffer_target_s=30.0),
    "mobile": DeviceProfile("mobile", 1280, 720, 30.0, ("avc1", "avc3", "hev1", "hvc1", "mp4a"),
                            drm_robustness="SW_SECURE_CRYPTO", hdcp="none", buffer_target_s=20.0),
    "tablet": DeviceProfile("tablet", 1920, 1080, 60.0, ("avc1", "avc3", "hev1", "hvc1", "vp09", "mp4a"),
                            drm_robustness="SW_SECURE_DECODE", hdcp="1.4", buffer_target_s=30.0),
    "tv": DeviceProfile("tv", 3840, 2160, 60.0, ("avc1", "avc3", "hev1", "hvc1", "vp09", "av01", "mp4a", "ec-3"),
                        drm_robustness="HW_SECURE_ALL", hdcp="2.2", buffer_target_s=60.0),
}


def names() -> list[str]:
    return list(BUILTIN)


def load(spec: str) -> DeviceProfile:
    """A built-in name, or a TOML/JSON file with DeviceProfile's fields."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    p = Path(spec)
    if not p.is_file():
        raise InputError(f"unknown device {spec!r}: not a built-in ({', '.join(BUILTIN)}) nor a readable file")
    text = p.read_text(errors="replace")
    try:
        doc = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot parse device profile: {exc}", where=spec) from None
    if not isinstance(doc, dict):
        raise InputError("device profile must be a table/object", where=spec)
    known = {f.name for f in fields(DeviceProfile)}
    unknown = set(doc) - known
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}", where=spec)
    doc.setdefault("name", p.stem)
    if "codecs" in doc:
        doc["codecs"] = tuple(doc["codecs"])
    try:
        return DeviceProfile(**doc)
    except TypeError as exc:
        raise InputError(str(exc), where=spec) from None


def describe(profile: DeviceProfile) -> dict:
    return asdict(profile)
