"""A small, fast PNG codec for rendered images.

Rendered fractals are mostly black: a PNG with no row filter and zlib's run-length strategy
encodes a 512x512 image in well under a millisecond (PIL's encoder, which tries filters, takes
several). The output is a standard PNG that any decoder reads.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 3: 2}  # gray, RGB


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of a uint8 (H, W) gray or (H, W, 3) RGB image."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected uint8 (H, W) or (H, W, 3), got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    channels = 1 if img.ndim == 2 else 3
    rows = np.zeros((h, 1 + w * channels), np.uint8)  # a leading 0 per row: filter type None
    rows[:, 1:] = img.reshape(h, w * channels)
    packer = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = packer.compress(rows.tobytes()) + packer.flush()
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[channels], 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def decode_png(data: bytes) -> np.ndarray:
    """A uint8 array (H, W) or (H, W, 3) from PNG bytes."""
    from PIL import Image  # here, not at the top: render actors only encode, and PIL costs 0.1 s to import

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)
