"""The manifest over HTTP: the one path by which the player and `abrlab mpd info` fetch an MPD.

The fetch is the fetcher's (`player.http.fetcher`): redirects followed by hand (at most
``max_redirects`` hops, http and https only, loops refused), the body capped at
`MAX_MANIFEST_BYTES`, ``Accept: application/dash+xml``, the one retry policy for transient
failures (5xx, timeouts, resets), and no retry at all when the server cannot be reached on
any origin (connection refused, unknown host: nothing has played, so nothing is lost by
saying so at once). Failures become the manifest errors of `player.dash.errors`, each one
line that the command line prints before exiting with status 2: ``unavailable: ...`` (not
found, unreachable, a bad redirect, retries exhausted) or ``unsupported: ...`` (too large).
"""
from __future__ import annotations

import asyncio
import re
from typing import Sequence
from urllib.parse import urlsplit

from player.dash.errors import ManifestUnavailable, UnsupportedManifest
from player.dash.loading import load_manifest, parse_manifest
from player.dash.model import Presentation
from player.dash.xmlsafe import MAX_MANIFEST_BYTES, decode_manifest_bytes
from player.http.clock import Clock
from player.http.config import HttpConfig
from player.http.fetcher import Body, FetchFailed, Fetcher, NotFound, Resource, open_client

ACCEPT = "application/dash+xml, */*;q=0.5"


def manifest_resource(urls: Sequence[str]) -> Resource:
    """The manifest at `urls` (the same path on every origin, the first preferred)."""
    return Resource("manifest", lambda alt: (urls[alt % len(urls)], None), len(urls), MAX_MANIFEST_BYTES,
                    object_type="m", headers={"Accept": ACCEPT}, fail_fast=True)


async def fetch_manifest(fetcher: Fetcher, urls: Sequence[str]) -> Body:
    """Fetch the manifest; ManifestUnavailable or UnsupportedManifest when it cannot be had."""
    try:
        return await fetcher.fetch(manifest_resource(urls))
    except NotFound as m:
        raise ManifestUnavailable(f"HTTP 404 fetching {m.url}") from None
    except FetchFailed as exc:
        if exc.kind == "too_large":
            raise UnsupportedManifest(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes (limit): {exc}") \
                from None
        raise ManifestUnavailable(str(exc)) from None


async def load_url(url: str, config: HttpConfig | None = None) -> Presentation:
    """Fetch (with a client of its own) and parse the manifest at an http(s) URL."""
    config = config or HttpConfig()
    async with open_client(config) as client:
        fetcher = Fetcher(client, Clock(), config, emit=lambda event: None)
        body = await fetch_manifest(fetcher, [url])
    return parse_body(body)


def parse_body(body: Body) -> Presentation:
    """The manifest in a fetched body (its text decoded with the server's charset, if any),
    URLs resolved against where it came from after redirects."""
    return parse_manifest(decode_manifest_bytes(body.data, body.charset), body.final_url or body.url)


def load(path_or_url: str, config: HttpConfig | None = None) -> Presentation:
    """A manifest from a local path, a file:// URL or an http(s) URL (`abrlab mpd info`)."""
    scheme = urlsplit(path_or_url).scheme.lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path_or_url) else ""
    if scheme in ("", "file"):
        return load_manifest(path_or_url)
    if scheme not in ("http", "https"):
        raise UnsupportedManifest(f"manifest URL scheme '{scheme}' is not supported (http/https)")
    return asyncio.run(load_url(path_or_url, config))
