"""Untrusted XML made safe to walk: bounded, defused parsing of an MPD, and DOM helpers.

The XML is parsed only by defusedxml (entity declarations and external references
refused) after a size check (`MAX_MANIFEST_BYTES`) and a streaming pass (`XmlCensus`) that
bounds the element count, attribute count and depth, so the DOM mpegdash walks is bounded
too. mpegdash is handed that DOM through `DomParser`, whose loader is replaced: it never
gets a URL or a string it could open. Before mpegdash sees the DOM, numeric attributes it
would convert with int()/float() are checked (`sanitize_numeric_attributes`): the ones the
model uses make the manifest invalid, the rest are dropped with a note.

Where mpegdash 0.4.1 is wrong or silent the builder reads the raw DOM with the helpers
at the end of this module (`child_elements`, `attribute`, `element_text`, ...).
"""
from __future__ import annotations

import codecs
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.dom import minidom
from xml.sax import SAXException
from xml.sax import handler as sax_handler

import defusedxml
import defusedxml.minidom
import defusedxml.sax
from mpegdash.nodes import MPEGDASH
from mpegdash.parser import MPEGDASHParser

from player.dash.errors import InvalidManifest, ManifestError, UnsupportedManifest
from player.dash.values import INTEGER_RE

__all__ = ["MAX_MANIFEST_BYTES", "MAX_ELEMENTS", "MAX_ATTRIBUTES", "MAX_DEPTH", "KNOWN_PREFIXES",
           "XLINK_NS", "MpdDocument", "manifest_text", "read_mpd_document", "decode_manifest_bytes", "xml_path",
           "child_elements", "attribute", "element_text", "attributes_by_local_name",
           "descendants"]

MAX_MANIFEST_BYTES = 16 * 1024 * 1024   # bytes of XML accepted
MAX_ELEMENTS = 100_000                  # XML elements (DOM + mpegdash: ~1.5 kB, ~30 µs each)
MAX_ATTRIBUTES = 400_000                # XML attributes, all elements together
MAX_DEPTH = 64                          # element nesting

# Namespace URIs declared for prefixes a manifest uses without declaring them.
KNOWN_PREFIXES = {
    "cenc": "urn:mpeg:cenc:2013",
    "mspr": "urn:microsoft:playready",
    "dashif": "https://dashif.org/CPS",
    "clearkey": "http://dashif.org/guidelines/clearKey",
    "ck": "http://dashif.org/guidelines/clearKey",
    "dvb": "urn:dvb:dash:dash-extensions:2014-1",
    "xlink": "http://www.w3.org/1999/xlink",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "scte35": "http://www.scte.org/schemas/35/2016",
    "ms": "urn:microsoft",
}
XLINK_NS = "http://www.w3.org/1999/xlink"


# ---------------------------------------------------------------------------------------
# the document, read within limits


@dataclass
class MpdDocument:
    """An MPD read safely: mpegdash's structure beside the raw DOM it was built from."""

    mpd: MPEGDASH
    root: minidom.Element
    stash: dict[int, dict[str, str]]    # id(element) -> attributes removed before mpegdash
    notes: list[str]                    # repairs and tolerances applied


def manifest_text(data: str | bytes) -> str:
    """The manifest as text, within `MAX_MANIFEST_BYTES` (bytes decoded, a BOM removed)."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_MANIFEST_BYTES:
            raise UnsupportedManifest(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes (limit)")
        data = decode_manifest_bytes(bytes(data))
    if len(data) > MAX_MANIFEST_BYTES:
        raise UnsupportedManifest(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes (limit)")
    return data[1:] if data.startswith("\ufeff") else data


def read_mpd_document(text: str) -> MpdDocument:
    """Check limits, parse defused, sanitise numbers and hand the DOM to mpegdash."""
    notes: list[str] = []
    # 1. bounded streaming pass (defused): element count, depth, root element.
    census = None
    for attempt in range(2):
        try:
            census = _census(text)
            break
        except (SAXException, defusedxml.DefusedXmlException, XmlLimitExceeded, ValueError) as exc:
            msg = exc.getMessage() if isinstance(exc, SAXException) else str(exc)
            repaired = declare_missing_prefixes(text) if attempt == 0 and "unbound prefix" in msg \
                else None
            if repaired is None:
                raise manifest_error_for_xml(exc) from None
            text, missing = repaired
            notes.append("declared namespace prefix(es) used without a declaration: "
                         + ", ".join(missing))
    assert census is not None
    if census.root is None or census.root[1] != "MPD":
        got = census.root[1] if census.root else "nothing"
        raise InvalidManifest(f"the root element is <{got}>, not <MPD>")
    # 2. the DOM (defused again: same text, same limits) and mpegdash's structure.
    try:
        dom = defusedxml.minidom.parseString(text)
    except Exception as exc:  # noqa: BLE001 - expat/defusedxml errors of the same text
        raise manifest_error_for_xml(exc) from None
    stash: dict[int, dict[str, str]] = {}
    sanitize_numeric_attributes(dom, stash, notes)
    try:
        mpd = DomParser.parse(dom)
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise InvalidManifest(f"mpegdash could not read the structure: {exc}") from None
    return MpdDocument(mpd=mpd, root=dom.documentElement, stash=stash, notes=notes)


class XmlLimitExceeded(Exception):
    """The streaming pass met more elements, attributes or depth than the limits allow."""


class XmlCensus(sax_handler.ContentHandler):
    """Streaming pass: count elements, bound depth, note the root element."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.attributes = 0
        self.depth = 0
        self.root: tuple[str | None, str] | None = None

    def startElementNS(self, name, qname, attrs):  # noqa: N802 (SAX API)
        self.count += 1
        self.depth += 1
        if self.root is None:
            self.root = name
        if self.count > MAX_ELEMENTS:
            raise XmlLimitExceeded(f"the manifest has more than {MAX_ELEMENTS} XML elements (limit)")
        if self.depth > MAX_DEPTH:
            raise XmlLimitExceeded(f"the manifest nests elements deeper than {MAX_DEPTH} (limit)")
        self.attributes += len(attrs)
        if self.attributes > MAX_ATTRIBUTES:
            raise XmlLimitExceeded(
                f"the manifest has more than {MAX_ATTRIBUTES} XML attributes (limit)")

    def endElementNS(self, name, qname):  # noqa: N802
        self.depth -= 1


def _census(text: str) -> XmlCensus:
    parser = defusedxml.sax.make_parser()
    parser.setFeature(sax_handler.feature_namespaces, True)
    parser.forbid_dtd = False
    parser.forbid_entities = True
    parser.forbid_external = True
    census = XmlCensus()
    parser.setContentHandler(census)
    parser.feed(text)
    parser.close()
    return census


def manifest_error_for_xml(exc: BaseException) -> ManifestError:
    """The one-line manifest error for an XML parser's (or defusedxml's) exception."""
    if isinstance(exc, XmlLimitExceeded):
        return UnsupportedManifest(str(exc))
    if isinstance(exc, defusedxml.EntitiesForbidden):
        return InvalidManifest(f"XML entity declaration refused ({exc.name!r}): entity bombs and "
                               f"external entities are not accepted")
    if isinstance(exc, defusedxml.ExternalReferenceForbidden):
        return InvalidManifest("XML external reference refused (external entities are not accepted)")
    if isinstance(exc, defusedxml.DTDForbidden):
        return InvalidManifest("XML DTD refused")
    if isinstance(exc, defusedxml.DefusedXmlException):
        return InvalidManifest(f"XML refused: {exc}")
    if isinstance(exc, SAXException):
        return InvalidManifest(f"not well-formed XML: {exc.getMessage()}"
                               + (f", line {exc.getLineNumber()}, column {exc.getColumnNumber()}"
                                  if hasattr(exc, "getLineNumber") else ""))
    return InvalidManifest(f"not well-formed XML: {exc}")


_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)


def declare_missing_prefixes(text: str) -> tuple[str, list[str]] | None:
    """Declare on the root element the namespace prefixes used but never declared."""
    scan = _COMMENT_RE.sub(lambda m: " " * len(m.group(0)), text)
    used = set(re.findall(r"<\s*([A-Za-z_][\w.-]*):[A-Za-z_]", scan))
    used |= set(re.findall(r"\s([A-Za-z_][\w.-]*):[A-Za-z_][\w.-]*\s*=\s*[\"']", scan))
    declared = set(re.findall(r"xmlns:([A-Za-z_][\w.-]*)\s*=", scan))
    missing = sorted(used - declared - {"xml", "xmlns"})
    root = re.search(r"<(?:[A-Za-z_][\w.-]*:)?MPD(?=[\s/>])", scan)
    if not missing or not root:
        return None
    decl = "".join(f' xmlns:{p}="{KNOWN_PREFIXES.get(p, "urn:abrlab:undeclared:" + p)}"'
                   for p in missing)
    pos = root.end()
    return text[:pos] + decl + text[pos:], missing


# ---------------------------------------------------------------------------------------
# numbers mpegdash would convert


# mpegdash converts these attributes with int()/float() and raises on bad values. The ones
# the model uses make the manifest invalid; the rest are removed before mpegdash sees them.
_USED_INTS = {
    "Representation": ("bandwidth", "width", "height"),
    "AdaptationSet": ("width", "height"),
    "SegmentTemplate": ("timescale", "presentationTimeOffset", "duration", "startNumber", "endNumber"),
    "SegmentList": ("timescale", "presentationTimeOffset", "duration", "startNumber", "endNumber"),
    "SegmentBase": ("timescale", "presentationTimeOffset"),
    "S": ("t", "d", "r"),
}
_OTHER_INTS = {
    "AdaptationSet": ("id", "minBandwidth", "maxBandwidth", "minWidth", "maxWidth", "minHeight",
                      "maxHeight", "selectionPriority", "subsegmentStartsWithSAP", "startWithSAP"),
    "Representation": ("qualityRanking", "numChannels", "sampleRate", "startWithSAP"),
    "SubRepresentation": ("level", "bandwidth", "width", "height", "startWithSAP"),
    "ContentComponent": ("id",),
    "Event": ("presentationTime", "duration", "id"),
    "EventStream": ("timescale",),
}
_OTHER_INT_LISTS = {"Subset": ("contains",), "SubRepresentation": ("dependencyLevel",)}
_OTHER_FLOATS = ("maximumSAPPeriod", "maxPlayoutRate", "availabilityTimeOffset")
_FLOAT_ELEMENTS = {"AdaptationSet", "Representation", "SubRepresentation", "BaseURL",
                   "SegmentBase", "SegmentList", "SegmentTemplate"}
_CHECKED = set(_USED_INTS) | set(_OTHER_INTS) | set(_OTHER_INT_LISTS) | _FLOAT_ELEMENTS


def xml_path(el: minidom.Element) -> str:
    """Where an element is, for error messages: /MPD/Period[2]/AdaptationSet[@id='1']."""
    parts = []
    node: Any = el
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        name = node.localName or node.nodeName
        label = name
        if node.getAttribute("id"):
            label = f"{name}[@id={node.getAttribute('id')!r}]"
        elif node.parentNode is not None and node.parentNode.nodeType == node.ELEMENT_NODE:
            same = [c for c in node.parentNode.childNodes
                    if c.nodeType == c.ELEMENT_NODE and (c.localName or c.nodeName) == name]
            if len(same) > 1:
                label = f"{name}[{same.index(node) + 1}]"
        parts.append(label)
        node = node.parentNode
    return "/" + "/".join(reversed(parts))


def sanitize_numeric_attributes(dom: minidom.Document, stash: dict[int, dict[str, str]],
                                notes: list[str]) -> None:
    """Check numeric attributes before mpegdash converts them (see _USED_INTS); refuse xlink."""
    for el in dom.getElementsByTagName("*"):
        if el.hasAttributeNS(XLINK_NS, "href"):
            raise UnsupportedManifest(
                f"remote elements (xlink:href on <{el.localName or el.nodeName}>) are not supported",
                where=xml_path(el))
        name = el.localName or el.nodeName
        if name not in _CHECKED:
            continue
        for attr in _USED_INTS.get(name, ()):
            if el.hasAttribute(attr):
                v = el.getAttribute(attr)
                if not INTEGER_RE.fullmatch(v):
                    raise InvalidManifest(f"{name}@{attr}={v[:40]!r} is not an integer",
                                          where=xml_path(el))
        for attr in _OTHER_INTS.get(name, ()):
            if el.hasAttribute(attr):
                v = el.getAttribute(attr)
                if not INTEGER_RE.fullmatch(v):
                    stash.setdefault(id(el), {})[attr] = v
                    el.removeAttribute(attr)
                    if not (name == "AdaptationSet" and attr == "id"):
                        notes.append(f"ignored non-integer {name}@{attr}={v[:40]!r}")
        for attr in _OTHER_INT_LISTS.get(name, ()):
            if el.hasAttribute(attr):
                v = el.getAttribute(attr)
                if not all(INTEGER_RE.fullmatch(x) for x in re.split(r"[, ]", v)):
                    el.removeAttribute(attr)
                    notes.append(f"ignored malformed {name}@{attr}={v[:40]!r}")
        if name in _FLOAT_ELEMENTS:
            for attr in _OTHER_FLOATS:
                if el.hasAttribute(attr):
                    v = el.getAttribute(attr)
                    try:
                        number = float(v)
                    except ValueError:
                        number = math.nan
                    if math.isnan(number) or number == -math.inf:
                        el.removeAttribute(attr)
                        notes.append(f"ignored non-numeric {name}@{attr}={v[:40]!r}")


class DomParser(MPEGDASHParser):
    """mpegdash's parser, fed a DOM we built with defusedxml (never a URL or a raw string)."""

    @classmethod
    def load_xmldom(cls, string_or_url):  # noqa: D102
        if not isinstance(string_or_url, minidom.Document):
            raise TypeError("DomParser only accepts a checked minidom Document")
        return string_or_url


def decode_manifest_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes → text: BOM first, then `charset` (HTTP), then the XML declaration, else UTF-8."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="strict")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InvalidManifest(f"not valid UTF-16: {exc.reason}") from None
    enc = charset
    if not enc:
        m = re.match(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']""", data[:300])
        enc = m.group(1).decode("ascii") if m else "utf-8"
    try:
        codecs.lookup(enc)
    except LookupError:
        raise InvalidManifest(f"unknown character encoding {enc!r}") from None
    try:
        return data.decode(enc)
    except UnicodeDecodeError as exc:
        raise InvalidManifest(f"not valid {enc}: {exc.reason} at byte {exc.start}") from None


# ---------------------------------------------------------------------------------------
# raw DOM helpers


def child_elements(el: Any, name: str) -> list[minidom.Element]:
    """Children as mpegdash's parse_child_nodes finds them (same rule, same order)."""
    return [c for c in el.childNodes if c.nodeType == c.ELEMENT_NODE
            and (c.localName == name or c.nodeName == name)]


def attribute(el: minidom.Element, name: str) -> str | None:
    """The attribute's text, None when absent (minidom gives "" for both)."""
    return el.getAttribute(name) if el.hasAttribute(name) else None


def element_text(el: minidom.Element) -> str:
    """The element's own text and CDATA, stripped."""
    out = []
    for c in el.childNodes:
        if c.nodeType in (c.TEXT_NODE, c.CDATA_SECTION_NODE):
            out.append(c.data)
    return "".join(out).strip()


def attributes_by_local_name(el: minidom.Element) -> dict[str, str]:
    """Attributes keyed by local name (lower-cased), whatever their prefix."""
    out: dict[str, str] = {}
    attrs = el.attributes
    for i in range(attrs.length if attrs else 0):
        a = attrs.item(i)
        local = (a.localName or a.name.split(":")[-1]).lower()
        if a.name.startswith("xmlns"):
            continue
        out.setdefault(local, a.value)
    return out


def descendants(el: minidom.Element) -> Iterator[minidom.Element]:
    """Every element below `el`, depth first, in document order."""
    for c in el.childNodes:
        if c.nodeType == c.ELEMENT_NODE:
            yield c
            yield from descendants(c)
