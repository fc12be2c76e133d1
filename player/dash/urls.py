"""Resolving the URLs a manifest names, and refusing schemes it may not use.

A local manifest may name http, https and local files; a remote (http/https) one only
http/https, so a manifest from the network can never make the player read a local file.
"""
from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from player.dash.errors import InvalidManifest, UnsupportedManifest

__all__ = ["LOCAL_SCHEMES", "REMOTE_SCHEMES", "check_url_scheme", "join_url", "join_url_checked"]

LOCAL_SCHEMES = frozenset({"http", "https", "file"})   # what a local manifest may reference
REMOTE_SCHEMES = frozenset({"http", "https"})          # what a remote manifest may reference


def check_url_scheme(url: str, allowed: frozenset[str], where: str) -> None:
    """Raise unless `url` is relative or uses one of the `allowed` schemes."""
    scheme = urlsplit(url).scheme.lower()
    if not scheme or scheme in allowed:
        return
    if "file" not in allowed:
        raise InvalidManifest(
            f"URL {url[:200]!r} uses scheme '{scheme}'; a remote manifest may reference only "
            f"http/https URLs", where=where)
    raise UnsupportedManifest(f"URL {url[:200]!r}: scheme '{scheme}' is not supported "
                              f"(http, https and local files only)", where=where)


def join_url(base: str, rel: str) -> str:
    """`rel` resolved against `base` (a relative result when `base` is empty)."""
    rel = rel.strip()
    if rel.startswith("//") and urlsplit(base).scheme.lower() == "file":
        # A scheme-relative URL in a local manifest means the network, not file://host/...
        return "https:" + rel
    if not base:
        return rel
    return urljoin(base, rel)


def join_url_checked(base: str, rel: str, allowed: frozenset[str], where: str) -> str:
    """`join_url`, then `check_url_scheme` on the result."""
    url = join_url(base, rel)
    check_url_scheme(url, allowed, where)
    return url
