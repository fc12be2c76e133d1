"""Loading a manifest: from text, a local file, a file:// URL or an http(s) URL.

`parse_manifest(text, url)` is the one entry point from XML to the model: bounded,
defused XML (`player.dash.xmlsafe`), then the builder (`player.dash.builder`). `url` is
where the manifest came from: relative BaseURLs and segment URLs resolve against it, and a
remote (http/https) manifest may only reference http/https URLs.

Errors are `ManifestError`s with one-line messages that start with ``unsupported: ``,
``invalid: `` or ``unavailable: `` (see `player.dash.errors`).
"""
from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from player.dash.builder import ManifestBuilder
from player.dash.errors import InvalidManifest, ManifestUnavailable, UnsupportedManifest
from player.dash.model import Presentation
from player.dash.xmlsafe import (MAX_MANIFEST_BYTES, decode_manifest_bytes, manifest_text,
                                 read_mpd_document)

__all__ = ["parse_manifest", "load_manifest", "load_manifest_async", "fetch_manifest"]


def parse_manifest(text: str | bytes, url: str | None = None) -> Presentation:
    """Parse MPD XML into a `Presentation`.

    `url` is where the manifest came from ("https://..." or "file:///..."): relative
    BaseURLs and segment URLs resolve against it, and a remote (http/https) manifest may
    only reference http/https URLs. None: URLs stay relative. Raises `ManifestError`.
    """
    return ManifestBuilder(read_mpd_document(manifest_text(text)), url).build()


# ---------------------------------------------------------------------------------------
# loading and fetching


def _is_url(s: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", s))


async def fetch_manifest(url: str, session: Any = None, max_bytes: int = MAX_MANIFEST_BYTES,
                         max_redirects: int = 5, timeout_s: float = 30.0) -> tuple[str, str]:
    """GET a manifest over http/https: returns (text, final_url after redirects).

    Redirects are followed by hand (at most `max_redirects`, http/https only); the body is
    read up to `max_bytes` (a larger Content-Length or body is refused, never buffered).
    """
    import aiohttp

    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsupportedManifest(f"manifest URL scheme '{scheme}' is not supported (http/https)")
    own = session is None
    if own:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
    current = url
    try:
        for _hop in range(max_redirects + 1):
            try:
                async with session.get(current, allow_redirects=False,
                                       headers={"Accept": "application/dash+xml, */*;q=0.5"}) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        loc = resp.headers.get("Location")
                        if not loc:
                            raise ManifestUnavailable(f"HTTP {resp.status} without Location from {current}")
                        nxt = urljoin(current, loc)
                        if urlsplit(nxt).scheme.lower() not in ("http", "https"):
                            raise InvalidManifest(f"redirect from {current} to a non-http URL {nxt[:200]!r}")
                        current = nxt
                        continue
                    if resp.status != 200:
                        raise ManifestUnavailable(f"HTTP {resp.status} {resp.reason or ''} fetching {current}")
                    if resp.content_length is not None and resp.content_length > max_bytes:
                        raise UnsupportedManifest(
                            f"the manifest is larger than {max_bytes} bytes (Content-Length "
                            f"{resp.content_length}) (limit)")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(65536):
                        size += len(chunk)
                        if size > max_bytes:
                            raise UnsupportedManifest(
                                f"the manifest is larger than {max_bytes} bytes (limit)")
                        chunks.append(chunk)
                    return decode_manifest_bytes(b"".join(chunks), resp.charset), current
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise ManifestUnavailable(f"cannot fetch {current}: {type(exc).__name__}: {exc}") from None
        raise ManifestUnavailable(f"too many redirects (more than {max_redirects}) fetching {url}")
    finally:
        if own:
            await session.close()


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


async def load_manifest_async(path_or_url: str | Path, session: Any = None,
                              max_bytes: int = MAX_MANIFEST_BYTES) -> Presentation:
    s = str(path_or_url)
    if _is_url(s) and not s.lower().startswith("file://"):
        text, final = await fetch_manifest(s, session=session, max_bytes=max_bytes)
        return parse_manifest(text, final)
    data, uri = _read_local(s, max_bytes)
    return parse_manifest(data, uri)


def load_manifest(path_or_url: str | Path, max_bytes: int = MAX_MANIFEST_BYTES) -> Presentation:
    """Load and parse a manifest from a local path, a file:// URL or an http(s) URL."""
    s = str(path_or_url)
    if _is_url(s) and not s.lower().startswith("file://"):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(load_manifest_async(s, max_bytes=max_bytes))
        raise RuntimeError("load_manifest() called inside an event loop; "
                           "use `await load_manifest_async(...)`")
    data, uri = _read_local(s, max_bytes)
    return parse_manifest(data, uri)
