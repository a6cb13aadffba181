"""QR codes as small 1-bit PNG images, fast: zxing-cpp encodes, zlib compresses.

zxing-cpp builds the module matrix (one byte per module, 0 = dark, 255 = light) in C++; the PNG is
written directly from it. At the default 8 pixels per module a light module is exactly one 0xFF
byte of 1-bit pixels, so the matrix row *is* the packed PNG row. Repeated rows use PNG filter
"Up" (all zeros), which zlib compresses to almost nothing. See BENCHMARKS.md (## Compose).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any, cast

import zxingcpp

EC_LEVELS = ("L", "M", "Q", "H")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TO_BITS = bytes.maketrans(b"\x00\xff", b"01")


@dataclass(frozen=True)
class QrImage:
    """A rendered QR code: PNG bytes and its size in pixels (square)."""

    png: bytes
    pixels: int
    modules: int  #: modules per side, quiet zone included


def qr_png(value: str, *, scale: int = 8, ec: str = "M", mask: int | None = None) -> QrImage:
    """Encode ``value`` (UTF-8 text) as a QR code PNG with ``scale`` pixels per module.

    ``mask`` fixes the data mask pattern (0-7); ``None`` lets the encoder score all eight and pick
    the best (the standard's choice, about 7× slower). Non-ASCII text is marked UTF-8 (ECI 26).
    Raises ``ValueError`` for an empty or too long value, an unknown error-correction level, a
    mask or a scale out of range.
    """
    if ec not in EC_LEVELS:
        raise ValueError(f"QR error correction must be one of {', '.join(EC_LEVELS)}, not {ec!r}")
    if not 1 <= scale <= 32:
        raise ValueError(f"QR scale must be between 1 and 32 pixels per module, not {scale}")
    if mask is not None and not 0 <= mask <= 7:
        raise ValueError(f"QR mask must be between 0 and 7, not {mask}")
    if not value:
        raise ValueError("cannot make a QR code of an empty value")
    options: dict[str, object] = {"ec_level": ec}
    if mask is not None:
        options["data_mask"] = mask
    if not value.isascii():  # declare UTF-8 (ECI 26): else readers guess, e.g. '¡' as Shift_JIS
        options["eci"] = "UTF-8"
    barcode = zxingcpp.create_barcode(value, zxingcpp.BarcodeFormat.QRCode, **options)
    image = barcode.to_image(scale=1, add_quiet_zones=True)
    height, width = image.shape
    matrix = bytes(memoryview(cast(Any, image)))  # zxing's Image has the buffer protocol
    return QrImage(_png_1bit(matrix, width, height, scale), width * scale, width)


def _png_1bit(matrix: bytes, width: int, height: int, scale: int) -> bytes:
    """A grayscale 1-bit PNG of a 0/255 module matrix, each module ``scale`` × ``scale`` pixels."""
    pixels = width * scale
    row_bytes = (pixels + 7) // 8
    repeat = (b"\x02" + bytes(row_bytes)) * (scale - 1)  # filter "Up": same as the row above
    starts = range(0, width * height, width)
    if scale == 8:  # a module is one byte of pixels: the matrix row is the packed row
        raw = b"".join([b"\x00" + matrix[i : i + width] + repeat for i in starts])
    else:  # widen each module to `scale` bits, then pack
        pad = b"0" * (-pixels % 8)
        rows = []
        for i in starts:
            bits = matrix[i : i + width].translate(_TO_BITS)
            bits = bits.replace(b"0", b"0" * scale).replace(b"1", b"1" * scale)
            rows.append(b"\x00" + int(bits + pad, 2).to_bytes(row_bytes, "big") + repeat)
        raw = b"".join(rows)
    header = struct.pack(">IIBBBBB", pixels, height * scale, 1, 0, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", _deflate(raw)),
            _chunk(b"IEND", b""),
        )
    )


def _deflate(data: bytes) -> bytes:
    """zlib-compress PNG rows. A small window and hash table (8 KiB, memLevel 4) are plenty for
    rows of a few dozen bytes and avoid the large allocations (mmap + page faults) that the
    defaults cost on every call: about 15 µs instead of 40-120 µs per code."""
    compressor = zlib.compressobj(2, zlib.DEFLATED, 13, 4)
    return compressor.compress(data) + compressor.flush()


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
