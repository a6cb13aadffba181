"""QR codes: every PNG decodes back to its value, whatever the scale, mask or content."""

from __future__ import annotations

import struct
import zlib

import pytest
from compose_helpers import decode_qr
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpacer.compose.qr import qr_png

VALUES = [
    "https://checkin.example.com/c/W0003",
    "签到码 W0001 张伟",
    "x",
    "A" * 800,
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("scale", [1, 3, 4, 8])
def test_png_decodes_to_value(value: str, scale: int) -> None:
    """The PNG of any value decodes back with zxing-cpp's reader, at small and large scales."""
    image = qr_png(value, scale=scale)
    assert decode_qr(image.png) == value
    assert image.pixels == image.modules * scale


@pytest.mark.parametrize("mask", [None, 0, 1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("ec", ["L", "M", "Q", "H"])
def test_every_mask_and_level_decodes(mask: int | None, ec: str) -> None:
    """Fixed masks (the fast path) decode as well as the standard's scored choice."""
    value = "https://checkin.example.com/c/W0042?d=2026-06-02"
    assert decode_qr(qr_png(value, ec=ec, mask=mask).png) == value


def test_png_is_well_formed_1bit_grayscale() -> None:
    """The PNG has a valid IHDR (1-bit grayscale, square) and CRCs on every chunk."""
    png = qr_png("hello", scale=8).png
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset = 8
    kinds = []
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + data) == crc
        kinds.append(kind)
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", data[:10])
            assert (width == height, depth, color) == (True, 1, 0)
        offset += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


@settings(max_examples=40, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=120))
def test_any_text_round_trips(value: str) -> None:
    """Property: any printable Unicode text survives encode -> PNG -> decode."""
    assert decode_qr(qr_png(value, scale=4).png) == value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value": ""}, "empty"),
        ({"value": "x", "ec": "X"}, "error correction"),
        ({"value": "x", "scale": 0}, "scale"),
        ({"value": "x", "mask": 8}, "mask"),
        ({"value": "x" * 5000}, "too long"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs: dict[str, object], message: str) -> None:
    """Empty or oversized values and out-of-range options raise ValueError, not a crash."""
    with pytest.raises(ValueError, match=message):
        qr_png(**kwargs)  # type: ignore[arg-type]
