"""Loading a manifest: from text, a local file or a file:// URL.

`parse_manifest(text, url)` is the one entry point from XML to the model: bounded,
defused XML (`player.dash.xmlsafe`), then the builder (`player.dash.builder`). `url` is
where the manifest came from: relative BaseURLs and segment URLs resolve against it, and a
remote (http/https) manifest may only reference http/https URLs.

Errors are `ManifestError`s with one-line messages that start with ``unsupported: ``,
``invalid: `` or ``unavailable: `` (see `player.dash.errors`). Nothing here opens a
socket: an http(s) manifest is fetched by the player's one fetcher
(`player.http.manifests`: redirects, size cap, retry policy) and its bytes given to
`parse_manifest`.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from player.dash.builder import ManifestBuilder
from player.dash.errors import ManifestUnavailable, UnsupportedManifest
from player.dash.model import Presentation
from player.dash.xmlsafe import MAX_MANIFEST_BYTES, manifest_text, read_mpd_document

__all__ = ["parse_manifest", "load_manifest"]


def parse_manifest(text: str | bytes, url: str | None = None) -> Presentation:
    """Parse MPD XML into a `Presentation`.

    `url` is where the manifest came from ("https://..." or "file:///..."): relative
    BaseURLs and segment URLs resolve against it, and a remote (http/https) manifest may
    only reference http/https URLs. None: URLs stay relative. Raises `ManifestError`.
    """
    return ManifestBuilder(read_mpd_document(manifest_text(text)), url).build()


# ---------------------------------------------------------------------------------------
# loading


def _is_url(s: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", s))


def _read_local(path_or_url: str, max_bytes: int) -> tuple[bytes, str]:
    if path_or_url.lower().startswith("file://"):
        from urllib.request import url2pathname

        path = Path(url2pathname(urlsplit(path_or_url).path))
    else:
        path = Path(path_or_url)
    try:
        path = path.resolve()
        if not path.is_file():
            raise ManifestUnavailable(f"cannot read {str(path)!r}: not a file")
        if path.stat().st_size > max_bytes:
            raise UnsupportedManifest(f"the manifest is larger than {max_bytes} bytes (limit)")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ManifestUnavailable(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise UnsupportedManifest(f"the manifest is larger than {max_bytes} bytes (limit)")
    return data, path.as_uri()


def load_manifest(path_or_url: str | Path, max_bytes: int = MAX_MANIFEST_BYTES) -> Presentation:
    """Load and parse a manifest from a local path or a file:// URL. An http(s) manifest is
    fetched by the player's one fetcher (`player.http.manifests`), not here."""
    s = str(path_or_url)
    if _is_url(s) and not s.lower().startswith("file://"):
        raise UnsupportedManifest(f"{s[:200]!r} is not a local file: the dash layer reads files only "
                                  "(fetch it with player.http.manifests.load)")
    data, uri = _read_local(s, max_bytes)
    return parse_manifest(data, uri)
