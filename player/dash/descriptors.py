"""Elements the builder reads from the raw DOM, where mpegdash is wrong or silent.

* ContentProtection with any namespace prefix (default_KID, pssh) and the license URL
  (dashif:Laurl, clearkey:Laurl, ms:laurl@licenseUrl, mspr:la_url);
* BaseURL with DVB failover attributes (serviceLocation, dvb:priority, dvb:weight) and
  availabilityTimeOffset/availabilityTimeComplete, each level's alternatives resolved
  against every alternative of its parent (whose attributes they inherit);
* the live service's UTCTiming sources and ServiceDescription (low-latency targets), which
  mpegdash 0.4.1 does not read.

Advisory values that do not parse (a ServiceDescription latency of "abc") are dropped
with a note rather than refusing the manifest: a player can do without them.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from xml.dom import minidom

from player.dash.errors import InvalidManifest
from player.dash.model import BaseUrl, ContentProtection, ServiceDescription, UtcTiming
from player.dash.urls import check_url_scheme, join_url
from player.dash.values import int_or_none, normalize_uuid, parse_xs_bool
from player.dash.xmlsafe import (attribute, attributes_by_local_name, child_elements, descendants,
                                 element_text)

__all__ = ["MAX_BASE_URL_ALTERNATIVES", "protection_descriptors", "merge_protection",
           "resolve_base_urls", "utc_timings", "service_descriptions"]

MAX_BASE_URL_ALTERNATIVES = 32          # failover alternatives kept per representation


def _content_protection(el: minidom.Element, where: str) -> ContentProtection:
    attrs = attributes_by_local_name(el)
    scheme = (attribute(el, "schemeIdUri") or "").strip()
    system_id = None
    if scheme.lower().startswith("urn:uuid:"):
        system_id = normalize_uuid(scheme[9:], "ContentProtection@schemeIdUri", where)
    kid = attrs.get("default_kid")
    default_kid = normalize_uuid(kid, "ContentProtection@default_KID", where) if kid else None
    pssh = None
    license_url = None
    for d in descendants(el):
        local = (d.localName or d.nodeName.split(":")[-1]).lower()
        if local == "pssh" and pssh is None:
            raw = re.sub(r"\s+", "", element_text(d))
            try:
                base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidManifest("ContentProtection pssh is not valid base64",
                                      where=where) from None
            pssh = raw or None
        elif local in ("laurl", "la_url") and license_url is None:
            dattrs = attributes_by_local_name(d)
            license_url = (dattrs.get("licenseurl") or element_text(d) or "").strip() or None
    return ContentProtection(scheme_id_uri=scheme, value=attribute(el, "value"),
                             system_id=system_id, default_kid=default_kid, pssh=pssh,
                             license_url=license_url)


def protection_descriptors(el: minidom.Element, where: str) -> tuple[ContentProtection, ...]:
    """The ContentProtection children of `el`, in document order."""
    return tuple(_content_protection(c, where) for c in child_elements(el, "ContentProtection"))


def merge_protection(*groups: tuple[ContentProtection, ...]) -> tuple[ContentProtection, ...]:
    """Descriptors of several levels, most specific first, duplicates removed."""
    return tuple(dict.fromkeys(cp for g in groups for cp in g))


def resolve_base_urls(parents: tuple[BaseUrl, ...], el: minidom.Element,
                      allowed: frozenset[str], where: str) -> tuple[BaseUrl, ...]:
    """This level's BaseURL alternatives resolved against each of the parent's."""
    kids = child_elements(el, "BaseURL")
    if not kids:
        return parents
    out: dict[str, BaseUrl] = {}
    for k in kids:
        text = element_text(k)
        attrs = attributes_by_local_name(k)
        service = attribute(k, "serviceLocation")
        prio = int_or_none(attrs.get("priority"))
        weight = int_or_none(attrs.get("weight"))
        ato_text = attribute(k, "availabilityTimeOffset")     # a float: checked by xmlsafe
        ato = None if ato_text is None else float(ato_text)
        atc = parse_xs_bool(attribute(k, "availabilityTimeComplete"))
        for p in parents:
            url = join_url(p.url, text)
            check_url_scheme(url, allowed, where)
            if url not in out:
                out[url] = BaseUrl(
                    url=url, service_location=service or p.service_location,
                    priority=prio if prio is not None else p.priority,
                    weight=weight if weight is not None else p.weight,
                    availability_time_offset_s=ato if ato is not None else p.availability_time_offset_s,
                    availability_time_complete=atc if atc is not None else p.availability_time_complete)
            if len(out) >= MAX_BASE_URL_ALTERNATIVES:
                break
    return tuple(sorted(out.values(), key=lambda b: b.priority))


def utc_timings(root: minidom.Element) -> tuple[UtcTiming, ...]:
    """The MPD's UTCTiming elements in document order (the first is preferred)."""
    return tuple(UtcTiming(scheme_id_uri=(attribute(el, "schemeIdUri") or "").strip(),
                           value=attribute(el, "value"))
                 for el in child_elements(root, "UTCTiming"))


def _number(el: minidom.Element, name: str, scale: float, notes: list[str]) -> float | None:
    text = attribute(el, name)
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v < 0:
        notes.append(f"ignored {el.localName or el.nodeName}@{name}={text[:40]!r} "
                     f"(not a non-negative number)")
        return None
    return v * scale


def service_descriptions(root: minidom.Element, notes: list[str]) -> tuple[ServiceDescription, ...]:
    """The MPD's ServiceDescription elements (Latency in ms → seconds; PlaybackRate)."""
    out = []
    for el in child_elements(root, "ServiceDescription"):
        latency = next(iter(child_elements(el, "Latency")), None)
        rate = next(iter(child_elements(el, "PlaybackRate")), None)
        lat = {k: None if latency is None else _number(latency, k, 0.001, notes)
               for k in ("target", "min", "max")}
        ref = None if latency is None else int_or_none(attribute(latency, "referenceId"))
        out.append(ServiceDescription(
            id=attribute(el, "id"),
            scopes=tuple((attribute(sc, "schemeIdUri") or "").strip()
                         for sc in child_elements(el, "Scope")),
            latency_target_s=lat["target"], latency_min_s=lat["min"], latency_max_s=lat["max"],
            latency_reference_id=ref,
            playback_rate_min=None if rate is None else _number(rate, "min", 1.0, notes),
            playback_rate_max=None if rate is None else _number(rate, "max", 1.0, notes)))
    return tuple(out)
