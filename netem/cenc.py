"""Common Encryption ('cenc' scheme, AES-128-CTR) with W3C ClearKey, for the emulated edge.

`Protection(key, kid)` holds one 16-byte content key and its 16-byte key ID. It provides
what a packager, an edge server and a test client need:

* the `pssh` boxes put in init segments and (base64) in the MPD: W3C ClearKey / Common
  (system `1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`, a version-1 `pssh` listing the KID), plus
  Widevine (`edef8ba9-…`) and PlayReady (`9a04f079-…`) boxes whose payloads are stubs
  (well-formed, naming the KID, but no real licence service behind them);
* the MPD `ContentProtection` elements (`mpd_content_protection`), with the licence URL
  `/license/clearkey` (resolved against the MPD's URL) in both `dashif:Laurl` and
  `clearkey:Laurl` forms;
* AES-128-CTR sample encryption: each sample has an 8-byte IV (carried in the fragment's
  `senc`, located by `saiz`/`saio`); the 16-byte counter block is IV ‖ 64-bit block counter
  starting at 0 for the sample; the keystream runs over the sample's protected bytes only
  (clear bytes of subsamples are skipped, as ISO/IEC 23001-7 says);
* `decrypt_segment(data, key)`: a media segment (or any run of `moof`+`mdat` pairs, e.g. a
  SegmentBase byte range) with every sample decrypted in place — same length, same boxes.
  It and `crypt_sample`/`keystream_xor` are module functions of the key alone, so the
  packager, the edge and the player's decryption (`player.http.decryption`) share one
  implementation; `Protection` offers them bound to its key;
* a ClearKey licence server's answer (`license_response`), in the W3C JSON Web Key format.

Video samples made of length-prefixed NAL units use subsample encryption
(`avc_subsamples`): the 4-byte length and the NAL header byte stay clear, and so do
leading bytes until the protected part is a multiple of 16 bytes; non-VCL NAL units stay
clear. Audio samples are encrypted whole.
"""
from __future__ import annotations

import base64
import hashlib
import json
import struct
import uuid
from typing import Sequence

from netem import isobmff
from netem.errors import InputError

CLEARKEY_SYSTEM_ID = uuid.UUID("1077efec-c0b2-4d02-ace3-3c1e52e2fb4b")  # W3C ClearKey and Common PSSH
WIDEVINE_SYSTEM_ID = uuid.UUID("edef8ba9-79d6-4ace-a3c8-27dcd51d21ed")
PLAYREADY_SYSTEM_ID = uuid.UUID("9a04f079-9840-4286-ab92-e65be0885f95")
MP4PROTECTION_SCHEME = "urn:mpeg:dash:mp4protection:2011"
LICENSE_PATH = "/license/clearkey"
IV_SIZE = 8
#: XML namespaces the MPD's ContentProtection elements use.
MPD_NAMESPACES = {
    "cenc": "urn:mpeg:cenc:2013",
    "dashif": "https://dashif.org/CPS",
    "clearkey": "http://dashif.org/guidelines/clearKey",
}


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _hex16(value: str, name: str) -> bytes:
    v = value.strip().lower().replace("-", "")
    if v.startswith("0x"):
        v = v[2:]
    try:
        b = bytes.fromhex(v)
    except ValueError:
        raise InputError(f"must be 32 hexadecimal digits (16 bytes), got {value!r}", where=name) from None
    if len(b) != 16:
        raise InputError(f"must be 32 hexadecimal digits (16 bytes), got {len(b)} byte(s)", where=name)
    return b


class Protection:
    """One content key and key ID, 'cenc' scheme, 8-byte per-sample IVs."""

    scheme = "cenc"
    iv_size = IV_SIZE

    def __init__(self, key: bytes, kid: bytes, license_url: str = LICENSE_PATH) -> None:
        if len(key) != 16 or len(kid) != 16:
            raise InputError("ClearKey key and KID must each be 16 bytes")
        self.key = bytes(key)
        self.kid = bytes(kid)
        self.license_url = license_url

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def default(cls) -> "Protection":
        """A fixed, documented key pair so presentations are reproducible:
        key = SHA-256("abrlab clearkey key")[:16], kid = SHA-256("abrlab clearkey kid")[:16]."""
        return cls(hashlib.sha256(b"abrlab clearkey key").digest()[:16],
                   hashlib.sha256(b"abrlab clearkey kid").digest()[:16])

    @classmethod
    def from_hex(cls, key_hex: str | None = None, kid_hex: str | None = None) -> "Protection":
        """From `--key HEX --kid HEX` (either may be omitted: the default's is used)."""
        d = cls.default()
        key = _hex16(key_hex, "--key") if key_hex else d.key
        kid = _hex16(kid_hex, "--kid") if kid_hex else d.kid
        return cls(key, kid)

    def __repr__(self) -> str:
        return f"Protection(kid={self.kid_uuid})"

    # -- identifiers -------------------------------------------------------------------------
    @property
    def kid_uuid(self) -> str:
        """The KID as the MPD writes `cenc:default_KID` (8-4-4-4-12 hex)."""
        return str(uuid.UUID(bytes=self.kid))

    @property
    def key_hex(self) -> str:
        return self.key.hex()

    @property
    def kid_hex(self) -> str:
        return self.kid.hex()

    # -- pssh ----------------------------------------------------------------------------------
    def clearkey_pssh(self) -> bytes:
        """Version-1 `pssh` of the W3C ClearKey / Common system listing the KID, no data."""
        return isobmff.pssh(CLEARKEY_SYSTEM_ID.bytes, b"", kids=[self.kid])

    def widevine_pssh(self) -> bytes:
        """A stub Widevine `pssh`: WidevinePsshData protobuf with algorithm AESCTR and the KID."""
        data = b"\x08\x01" + b"\x12\x10" + self.kid + b"\x48" + _varint(0x63656E63)  # protection_scheme 'cenc'
        return isobmff.pssh(WIDEVINE_SYSTEM_ID.bytes, data)

    def playready_pssh(self) -> bytes:
        """A stub PlayReady `pssh`: a PlayReady Object with a v4.0 WRM header naming the KID."""
        guid_le = uuid.UUID(bytes=self.kid).bytes_le
        xml = ('<WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="4.0.0.0">'
               "<DATA><PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID></PROTECTINFO>"
               f"<KID>{base64.b64encode(guid_le).decode()}</KID></DATA></WRMHEADER>").encode("utf-16-le")
        record = struct.pack("<HH", 1, len(xml)) + xml
        pro = struct.pack("<IH", 6 + len(record), 1) + record
        return isobmff.pssh(PLAYREADY_SYSTEM_ID.bytes, pro)

    def pssh_boxes(self) -> list[bytes]:
        return [self.clearkey_pssh(), self.widevine_pssh(), self.playready_pssh()]

    # -- MPD -----------------------------------------------------------------------------------
    def mpd_content_protection(self, indent: str = "      ") -> list[str]:
        """The ContentProtection elements for an AdaptationSet, as XML lines."""
        i2 = indent + "  "

        def b64(b: bytes) -> str:
            return base64.b64encode(b).decode()

        return [
            f'{indent}<ContentProtection schemeIdUri="{MP4PROTECTION_SCHEME}" value="cenc" '
            f'cenc:default_KID="{self.kid_uuid}"/>',
            f'{indent}<ContentProtection schemeIdUri="urn:uuid:{CLEARKEY_SYSTEM_ID}" value="ClearKey1.0">',
            f"{i2}<cenc:pssh>{b64(self.clearkey_pssh())}</cenc:pssh>",
            f'{i2}<dashif:Laurl>{self.license_url}</dashif:Laurl>',
            f'{i2}<clearkey:Laurl Lic_type="EME-1.0">{self.license_url}</clearkey:Laurl>',
            f"{indent}</ContentProtection>",
            f'{indent}<ContentProtection schemeIdUri="urn:uuid:{WIDEVINE_SYSTEM_ID}" value="Widevine">',
            f"{i2}<cenc:pssh>{b64(self.widevine_pssh())}</cenc:pssh>",
            f"{indent}</ContentProtection>",
            f'{indent}<ContentProtection schemeIdUri="urn:uuid:{PLAYREADY_SYSTEM_ID}" value="MSPR 2.0">',
            f"{i2}<cenc:pssh>{b64(self.playready_pssh())}</cenc:pssh>",
            f"{indent}</ContentProtection>",
        ]

    # -- licence -------------------------------------------------------------------------------
    def jwk(self) -> dict:
        return {"kty": "oct", "kid": _b64url(self.kid), "k": _b64url(self.key)}

    def license_response(self, request: bytes | str | None = None) -> bytes:
        """The W3C ClearKey licence for a request `{"kids": [b64url, ...], "type": ...}`.

        Answers with our key when the request names our KID (or names none); a request for
        other KIDs gets an empty key list. Malformed JSON raises InputError."""
        kids: list[str] | None = None
        typ = "temporary"
        if request:
            try:
                doc = json.loads(request)
                if not isinstance(doc, dict):
                    raise ValueError
                kids = doc.get("kids")
                typ = str(doc.get("type", typ))
                if kids is not None and (not isinstance(kids, list) or not all(isinstance(k, str) for k in kids)):
                    raise ValueError
            except (ValueError, UnicodeDecodeError):
                raise InputError("ClearKey licence request must be JSON {\"kids\": [base64url, ...]}",
                                 where="license request") from None
        wanted = True
        if kids is not None:
            try:
                wanted = any(_unb64url(k) == self.kid for k in kids)
            except ValueError:
                wanted = False
        keys = [self.jwk()] if wanted else []
        return json.dumps({"keys": keys, "type": typ}).encode()

    # -- AES-CTR (the module's primitives with this key) -----------------------------------------
    def keystream_xor(self, data: bytes, iv: bytes, offset: int = 0) -> bytes:
        """`keystream_xor` with this key."""
        return keystream_xor(self.key, data, iv, offset)

    def crypt_sample(self, sample: bytes, iv: bytes, subsamples: Sequence[tuple[int, int]] | None = None) -> bytes:
        """`crypt_sample` with this key."""
        return crypt_sample(self.key, sample, iv, subsamples)

    def decrypt_segment(self, data: bytes, iv_size: int | None = None) -> bytes:
        """`decrypt_segment` with this key."""
        return decrypt_segment(data, self.key, iv_size or self.iv_size)


# ---------------------------------------------------------------------------------------
# the CENC primitives, shared by the packager, the edge and the player's decryption


def keystream_xor(key: bytes, data: bytes, iv: bytes, offset: int = 0) -> bytes:
    """XOR `data` with the AES-128-CTR keystream of `key` for the sample IV `iv`, starting
    `offset` bytes into the sample's protected stream (encryption and decryption are the
    same operation). Needs the optional ``cryptography`` package."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if not data:
        return b""
    block, skip = divmod(offset, 16)
    counter = (int.from_bytes(iv.ljust(16, b"\0"), "big") + block) % (1 << 128)
    enc = Cipher(algorithms.AES(key), modes.CTR(counter.to_bytes(16, "big"))).encryptor()
    return enc.update(b"\0" * skip + bytes(data))[skip:]


def crypt_sample(key: bytes, sample: bytes, iv: bytes,
                 subsamples: Sequence[tuple[int, int]] | None = None) -> bytes:
    """Encrypt (or decrypt) one whole sample: its protected ranges of each (clear,
    protected) subsample pair, or all of it when there are none."""
    if not subsamples:
        return keystream_xor(key, sample, iv)
    out = bytearray(sample)
    pos = 0
    stream = 0
    for clear, prot in subsamples:
        pos += clear
        out[pos:pos + prot] = keystream_xor(key, bytes(sample[pos:pos + prot]), iv, stream)
        pos += prot
        stream += prot
    return bytes(out)


def decrypt_segment(data: bytes, key: bytes, iv_size: int = IV_SIZE) -> bytes:
    """`data` with every protected sample of every `moof`+`mdat` pair decrypted in place.

    Uses each `traf`'s `senc` (IVs and subsamples) and `trun` (sample sizes, data offset);
    fragments without `senc` are left as they are. Malformed boxes raise `BoxError`."""
    out = bytearray(data)
    boxes = isobmff.parse(data)
    for b in boxes:
        if b.type != "moof":
            continue
        for traf in b.find_all("traf"):
            tfhd_b, trun_b, senc_b = traf.find("tfhd"), traf.find("trun"), traf.find("senc")
            if senc_b is None or trun_b is None or tfhd_b is None:
                continue
            tfhd = isobmff.parse_tfhd(tfhd_b)
            trun = isobmff.parse_trun(trun_b, tfhd)
            entries = isobmff.parse_senc(senc_b, iv_size)
            if len(entries) != trun["sample_count"]:
                raise isobmff.BoxError(f"senc has {len(entries)} entries but trun has "
                                       f"{trun['sample_count']} samples (moof at {b.offset})")
            base = tfhd.get("base_data_offset", b.offset)
            pos = base + (trun["data_offset"] or 0)
            for size, (iv, subs) in zip(trun["sizes"], entries):
                if pos + size > len(out):
                    raise isobmff.BoxError(f"sample at {pos} of {size} bytes runs past the data")
                if subs and sum(c + p for c, p in subs) != size:
                    raise isobmff.BoxError(f"subsamples of the sample at {pos} do not add up to {size}")
                out[pos:pos + size] = crypt_sample(key, bytes(out[pos:pos + size]), iv, subs)
                pos += size
    return bytes(out)


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def simple_nal_subsample(size: int, header: int = 5) -> tuple[int, int]:
    """(clear, protected) for a sample that is one length-prefixed VCL NAL unit: the 4-byte
    length and 1-byte NAL header clear, plus enough leading bytes that the protected part is
    a multiple of 16."""
    if size <= header:
        return size, 0
    prot = (size - header) // 16 * 16
    return size - prot, prot


def avc_subsamples(sample: bytes, length_size: int = 4) -> list[tuple[int, int]]:
    """Subsample map for a sample of length-prefixed AVC NAL units: VCL NAL units (types
    1–5) protected as in `simple_nal_subsample`, everything else clear; clear runs above
    65535 bytes are split (the field is 16 bits)."""
    subs: list[tuple[int, int]] = []
    clear = 0
    pos = 0
    n = len(sample)
    while pos < n:
        if pos + length_size > n:
            clear += n - pos
            break
        nal = int.from_bytes(sample[pos:pos + length_size], "big")
        total = min(length_size + nal, n - pos)
        nal_type = sample[pos + length_size] & 0x1F if total > length_size else 0
        if 1 <= nal_type <= 5:
            c, p = simple_nal_subsample(total, length_size + 1)
            clear += c
            if p:
                subs.append((clear, p))
                clear = 0
        else:
            clear += total
        pos += total
    if clear or not subs:
        subs.append((clear, 0))
    out: list[tuple[int, int]] = []
    for c, p in subs:
        while c > 0xFFFF:
            out.append((0xFFFF, 0))
            c -= 0xFFFF
        out.append((c, p))
    return out
