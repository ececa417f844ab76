"""The chaos-game renderer, compiled with numba.

``render(ifs, settings, mask_key, map_key)`` is a pure function: the same system, settings and
keys give the same bytes on any machine (integer hashing for randomness; IEEE float64 arithmetic
without fast-math or FMA contraction, rounded once to float32 for storage; no threads; the SIMD
lanes do exactly the scalar operations).

Semantics (the 1p-frac release, restated in the method page §4):

* The orbit starts at (0, 0); at each step map ``i`` is chosen with probability ``p_i``. The map
  choices come from ``map_key`` alone, so classes rendered with one ``map_key`` share the same
  sequence of choices and differ only by their parameters (the release fixes its seed the same
  way). ``iterations`` points are drawn in total.
* To keep the CPU busy, the orbit is run as ``CHAINS`` interleaved chains that each start at the
  start point: point ``k`` is step ``k // CHAINS`` of chain ``k % CHAINS`` (the recurrence
  ``x <- a x + b y + e`` is a serial dependency; independent chains fill its latency and the SIMD
  lanes). Every point of every chain lies on the same attractor after a few steps, exactly as the
  release's single chain does; the first few points of each chain are its transient, as the
  release's first points are. The map of point ``k`` is map ``i`` with ``cum[i-1] <= u < cum[i]``
  for ``u``, 32 bits of ``splitmix64(map_key, k // 2)`` (the low half for even ``k``, the high
  half for odd ``k``), and ``cum`` the thresholds of :func:`_thresholds`.
* Points are computed in float64 and stored as float32. Points that are not finite (a diverging
  perturbed system; also a finite float64 beyond the float32 range) are dropped; if none is
  finite the image is black. The rest are fitted into ``size x size`` pixels with ``pad`` pixels
  of margin, each axis scaled on its own (as the release does), y pointing up; an axis whose
  points all share one value is centred. How they are fitted is the ``framing``:

  - ``bbox`` (the default): the points' own bounding box onto ``[pad, size-1-pad]``, each patch
    centred on its point's pixel.
  - ``release``: the release's fit. Point 0 is the start point (0, 0) itself and the orbit fills
    points 1..``iterations``-1, so the origin is drawn (first, under any later point) and is part
    of the fitted box, as it is one of the release's points. Column ``ix = pad + int((x - xmin)
    * (size - 2 pad) / (xmax - xmin))`` in ``[pad, size-pad]``, likewise ``iy`` for y; the point's
    pixel is ``(size-1-iy, ix)`` (the release flips its image upside down) and its patch covers
    rows ``size-4-iy .. size-2-iy`` and columns ``ix+1 .. ix+3`` (the release pastes the patch's
    corner at ``(ix+1, iy+1)`` before the flip: one pixel off the point, not centred on it).
* ``patch`` draws each point as a 3x3 patch (centred on its pixel with ``bbox``), with a binary
  mask ``m`` in 1..511 (``1 + (v * 511 >> 16)`` for ``v``, 16 bits of
  ``splitmix64(mask_key, k // 4)``, bits ``16 (k % 4)`` up): pixel ``(r, c)`` of the patch is gray where bit ``3 r + c`` of ``m`` is 1
  and black where it is 0, later points overwriting earlier ones (the release pastes whole
  patches). ``point`` draws single gray pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from numba.core import cgutils

from raysweep.config.schema import FRAMINGS, min_pad
from raysweep.fractal.ifs import IFS

# Interleaved chains: one SIMD lane each, four AVX2 vectors of float64 per step. Fewer chains (8)
# let LLVM unroll the lane loop instead of vectorising it; more (32) gain nothing measurable and
# add transients.
CHAINS = 16
_STEPS = 32  # orbit steps per block: a block is _BLOCK points whose scratch stays in L1
_BLOCK = CHAINS * _STEPS
_AHEAD = 8  # prefetch distance of the patch scatter, in points (4..16 measured alike)
_PREFETCH_ABOVE = 128 * 1024  # image bytes above which the patch scatter prefetches (measured)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_U32 = np.uint64(0xFFFFFFFF)
_U16 = np.uint64(0xFFFF)


@dataclass(frozen=True)
class RenderSettings:
    """How a system becomes pixels (the release: 512 px, pad 6, 100,000 points, patches, gray 127,
    and its framing; ``bbox`` framing, the default, fits the points' own bounding box)."""

    size: int = 512
    pad: int = 6
    iterations: int = 100_000
    draw: str = "patch"
    gray: int = 127
    framing: str = "bbox"

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size={self.size} is out of range; allowed: >= 8")
        if self.draw not in ("patch", "point"):
            raise ValueError(f"draw={self.draw!r} is not allowed; choose one of: patch, point")
        if self.framing not in FRAMINGS:
            raise ValueError(f"framing={self.framing!r} is not allowed; choose one of: {', '.join(FRAMINGS)}")
        if self.pad < min_pad(self.draw, self.framing) or self.size - 2 * self.pad < 2:
            raise ValueError(f"pad={self.pad} does not fit size={self.size} with draw={self.draw}, framing={self.framing}")
        if self.iterations < 1:
            raise ValueError(f"iterations={self.iterations} is out of range; allowed: >= 1")
        if not 1 <= self.gray <= 255:
            raise ValueError(f"gray={self.gray} is out of range; allowed: 1..255")


# ---------------------------------------------------------------------------------------------
# randomness


@numba.njit(inline="always")
def _finalize(z):
    """The splitmix64 output function: 64 well-mixed bits from a 64-bit state."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _mix(key, counter):
    """splitmix64 of (key, counter): 64 well-mixed bits, no state carried between calls."""
    return _finalize(key + _GOLDEN * (counter + np.uint64(1)))


# ---------------------------------------------------------------------------------------------
# the orbit
#
# The chain state lives in ``st`` (float64, 6 rows of CHAINS): x, y, then the running min x,
# max x, min y, max y of each chain. The loop over the CHAINS lanes has a constant trip count, no
# branch and no gather, so LLVM vectorises it (one lane per chain); the bounding box is kept per
# lane on the fly instead of in a second pass over the points. The map draws of a block are
# hashed first, in a loop of their own that vectorises too.


@numba.njit(inline="always")
def _select_map(maps, cum, u):
    """Coefficients of the map for the 32-bit draw ``u``: map i where cum[i-1] <= u < cum[i].

    ``maps`` and ``cum`` are tuples, so the loop is unrolled at compile time into N-1 compares and
    blends (no branch to mispredict, no gather); for N = 2 it is one compare.
    """
    a, b, c, d, e, f = maps[0]
    for j in range(len(cum)):
        s = u >= np.uint64(cum[j])
        m = maps[j + 1]
        a = m[0] if s else a
        b = m[1] if s else b
        c = m[2] if s else c
        d = m[3] if s else d
        e = m[4] if s else e
        f = m[5] if s else f
    return a, b, c, d, e, f


@numba.njit(inline="always")
def _advance(maps, cum, u, st, lane, xs, ys, k):
    """One step of chain ``lane`` with draw ``u``; the new point is point ``k``."""
    a, b, c, d, e, f = _select_map(maps, cum, u)
    x = st[lane]
    y = st[CHAINS + lane]
    nx = a * x + b * y + e
    ny = c * x + d * y + f
    st[lane] = nx
    st[CHAINS + lane] = ny
    xs[k] = np.float32(nx)
    ys[k] = np.float32(ny)
    # min/max as compare-and-select: exact, and vectorised (no NaN reaches the fast path)
    st[2 * CHAINS + lane] = nx if nx < st[2 * CHAINS + lane] else st[2 * CHAINS + lane]
    st[3 * CHAINS + lane] = nx if nx > st[3 * CHAINS + lane] else st[3 * CHAINS + lane]
    st[4 * CHAINS + lane] = ny if ny < st[4 * CHAINS + lane] else st[4 * CHAINS + lane]
    st[5 * CHAINS + lane] = ny if ny > st[5 * CHAINS + lane] else st[5 * CHAINS + lane]


@numba.njit(cache=True, nogil=True)
def _orbit(maps, cum, iterations, map_key, xs, ys, st, draws):
    """Run the chaos game into ``xs``/``ys`` (float32).

    Returns ``(all_finite, xmin, xmax, ymin, ymax)``; the box is exact for the stored points when
    ``all_finite`` is true, and meaningless otherwise.
    """
    for c in range(CHAINS):
        st[c] = 0.0
        st[CHAINS + c] = 0.0
        st[2 * CHAINS + c] = np.inf
        st[3 * CHAINS + c] = -np.inf
        st[4 * CHAINS + c] = np.inf
        st[5 * CHAINS + c] = -np.inf
    full = iterations // CHAINS  # steps in which every chain draws a point
    for t0 in range(0, full, _STEPS):
        nb = min(_STEPS, full - t0)
        # 1. the map draws of the block: one splitmix64 per two points, written as 32-bit halves
        #    (the state advances by the golden ratio, so the counter multiply is a vector add)
        z = map_key + _GOLDEN * np.uint64(t0 * (CHAINS // 2))
        for i in range(nb * (CHAINS // 2)):
            z += _GOLDEN
            h = _finalize(z)
            draws[np.uint64(2 * i)] = np.uint32(h & _U32)
            draws[np.uint64(2 * i + 1)] = np.uint32(h >> np.uint64(32))
        # 2. the steps, every chain in its own SIMD lane
        for t in range(nb):
            k0 = np.uint64((t0 + t) * CHAINS)
            d0 = np.uint64(t * CHAINS)
            for c in range(CHAINS):
                _advance(maps, cum, np.uint64(draws[d0 + np.uint64(c)]), st, c, xs, ys, k0 + np.uint64(c))
    # the last, partial step: only the first chains draw
    for c in range(iterations - full * CHAINS):
        k = np.uint64(full * CHAINS + c)
        u = (_mix(map_key, k >> np.uint64(1)) >> (np.uint64(32) * (k & np.uint64(1)))) & _U32
        _advance(maps, cum, u, st, c, xs, ys, k)

    # A non-finite point stays non-finite under any affine map (inf * 0 and inf - inf are NaN),
    # so every point is finite iff the last point of every chain is.
    finite = True
    for c in range(min(CHAINS, iterations)):
        finite &= np.abs(st[c]) < np.inf and np.abs(st[CHAINS + c]) < np.inf
    xmin = np.float32(st[2 * CHAINS : 3 * CHAINS].min())
    xmax = np.float32(st[3 * CHAINS : 4 * CHAINS].max())
    ymin = np.float32(st[4 * CHAINS : 5 * CHAINS].min())
    ymax = np.float32(st[5 * CHAINS : 6 * CHAINS].max())
    # rounding to float32 is monotonic, so the rounded box is the box of the stored points; it is
    # finite iff no stored point overflowed float32
    finite &= np.abs(xmin) < np.inf and np.abs(xmax) < np.inf and np.abs(ymin) < np.inf and np.abs(ymax) < np.inf
    return finite, float(xmin), float(xmax), float(ymin), float(ymax)


@numba.njit(cache=True, nogil=True)
def _finite_box(xs, ys, iterations):
    """Count and bounding box of the finite stored points (the slow path for diverging systems)."""
    xmin = np.inf
    xmax = -np.inf
    ymin = np.inf
    ymax = -np.inf
    finite = 0
    for k in range(iterations):
        x = np.float64(xs[k])
        y = np.float64(ys[k])
        if np.abs(x) < np.inf and np.abs(y) < np.inf:
            finite += 1
            xmin = min(xmin, x)
            xmax = max(xmax, x)
            ymin = min(ymin, y)
            ymax = max(ymax, y)
    return finite, xmin, xmax, ymin, ymax


# ---------------------------------------------------------------------------------------------
# rasterisation


@intrinsic
def _store_u16(typingctx, arr, idx, val):
    """Store ``val`` (uint16) at byte offset ``idx`` of the 1-d uint8 array ``arr``, unaligned.

    Two pixels in one store; portable LLVM IR (an unaligned i16 store), no bounds check.
    """
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.ndim == 1):
        return None
    sig = types.void(arr, idx, val)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        offset = context.cast(builder, args[1], signature.args[1], types.intp)
        value = context.cast(builder, args[2], signature.args[2], types.uint16)
        ptr = builder.bitcast(builder.gep(ary.data, [offset]), ir.IntType(16).as_pointer())
        builder.store(value, ptr, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _prefetch_w(typingctx, arr, idx):
    """Hint that byte ``idx`` of ``arr`` will be written soon (llvm.prefetch for writing, into L1:
    ``prefetchw`` on x86). A hint only: it never faults and changes no byte."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1):
        return None
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        offset = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.bitcast(builder.gep(ary.data, [offset]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        # "llvm.prefetch.p0" with opaque pointers, "llvm.prefetch.p0i8" with typed ones
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch." + ptr.type.intrinsic_name)
        # (address, write, locality 3 = keep in all levels, data cache)
        builder.call(fn, [ptr, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(inline="always")
def _mask_row(h, j):
    """Row of the mask pattern tables for point j (0..3) of hash h: 4 m, with m in 1..511."""
    m = np.uint64(1) + ((((h >> np.uint64(16 * j)) & _U16) * np.uint64(511)) >> np.uint64(16))
    return m * np.uint64(4)


@numba.njit(inline="always")
def _paste(flat, p, r, usize, rows16, rows8):
    """Paste mask pattern r at p (the patch's top-left pixel): per row a uint16 and a byte store."""
    _store_u16(flat, p, rows16[r])
    flat[p + np.uint64(2)] = rows8[r]
    p += usize
    _store_u16(flat, p, rows16[r + np.uint64(1)])
    flat[p + np.uint64(2)] = rows8[r + np.uint64(1)]
    p += usize
    _store_u16(flat, p, rows16[r + np.uint64(2)])
    flat[p + np.uint64(2)] = rows8[r + np.uint64(2)]


@numba.njit(inline="always")
def _prefetch_patch(flat, p, usize):
    """Prefetch the three image lines of the patch at p."""
    _prefetch_w(flat, p)
    _prefetch_w(flat, p + usize)
    _prefetch_w(flat, p + usize + usize)


@numba.njit(inline="always")
def _fit(xmin, xmax, ymin, ymax, size, pad, patch, release):
    """Scales ``sx``, ``sy`` and the flat index ``base`` that place a point: its pixel (its patch's
    top-left pixel with ``patch``) is ``base + int((x - xmin) sx) - int((y - ymin) sy) size``.

    bbox: the box onto [pad, size-1-pad], a patch centred on its point. release: the box onto
    [pad, size-pad] (span size - 2 pad, as the release scales), the patch's corner one pixel right
    of and above the point (rows -3..-1, columns +1..+3; see the module docstring). A flat axis is
    centred.
    """
    span = float(size - 2 * pad if release else size - 1 - 2 * pad)
    sx = span / (xmax - xmin) if xmax > xmin else 0.0
    sy = span / (ymax - ymin) if ymax > ymin else 0.0
    centre = size // 2 if release else (size - 1) // 2
    ox = pad if xmax > xmin else centre
    oy = pad if ymax > ymin else centre
    if release:
        # the release divides, (v / (max - min)) * span, so its extreme point lands exactly on
        # size - pad; v * (span / (max - min)) may fall an ulp short of span: round the scale up
        sx = np.nextafter(sx, np.inf) if (xmax - xmin) * sx < span else sx
        sy = np.nextafter(sy, np.inf) if (ymax - ymin) * sy < span else sy
        return sx, sy, (size - 1 - oy) * size + ox + (1 - 3 * size if patch else 0)
    return sx, sy, (size - 1 - oy) * size + ox - (size + 1 if patch else 0)


@numba.njit(cache=True, nogil=True)
def _raster(
    xs, ys, iterations, xmin, xmax, ymin, ymax, size, pad, patch, release, rows16, rows8, gray, mask_key, img, pos
):
    """Fit the points (all finite) into ``img`` (size x size, zeroed here) and draw them.

    Block by block: first the pixel index of every point (a loop that LLVM vectorises), then the
    scatter, which hashes one mask word per four points and otherwise only loads and stores.
    """
    flat = img.reshape(-1)
    flat[:] = 0
    # flat pixel index = origin + ix - iy size with ix = int((x - xmin) sx), iy likewise (y up);
    # a patch is addressed by its top-left corner (bbox: one row up and one column left)
    sx, sy, origin = _fit(xmin, xmax, ymin, ymax, size, pad, patch, release)
    usize = np.uint64(size)
    g = np.uint8(gray)
    prefetch = size * size > _PREFETCH_ABOVE
    for b in range(0, iterations, _BLOCK):
        cnt = min(_BLOCK, iterations - b)
        ub = np.uint64(b)
        for i in range(cnt):  # unsigned indices: no negative-index wraparound code
            k = ub + np.uint64(i)
            ix = np.int64((np.float64(xs[k]) - xmin) * sx)
            iy = np.int64((np.float64(ys[k]) - ymin) * sy)
            pos[np.uint64(i)] = origin + ix - iy * size
        if not patch:
            for i in range(cnt):
                flat[np.uint64(pos[np.uint64(i)])] = g
            continue
        # the patches, in point order; the masks are computed on the fly (16 bits of
        # splitmix64(mask_key, k // 4) per point)
        if prefetch:
            # the image does not fit in L1: prefetch (for writing) the lines of the patch
            # _AHEAD points later; pos has _AHEAD extra entries, stale ones are harmless hints
            for q in range(cnt // 4):
                h = _mix(mask_key, np.uint64(b // 4 + q))
                for j in range(4):
                    i = np.uint64(4 * q + j)
                    _prefetch_patch(flat, np.uint64(pos[i + np.uint64(_AHEAD)]), usize)
                    _paste(flat, np.uint64(pos[i]), _mask_row(h, j), usize, rows16, rows8)
        else:
            for q in range(cnt // 4):
                h = _mix(mask_key, np.uint64(b // 4 + q))
                for j in range(4):
                    _paste(flat, np.uint64(pos[np.uint64(4 * q + j)]), _mask_row(h, j), usize, rows16, rows8)
        for i in range(cnt // 4 * 4, cnt):  # the last points of the last block
            h = _mix(mask_key, np.uint64((b + i) // 4))
            _paste(flat, np.uint64(pos[np.uint64(i)]), _mask_row(h, i % 4), usize, rows16, rows8)


@numba.njit(cache=True, nogil=True)
def _raster_checked(
    xs, ys, iterations, xmin, xmax, ymin, ymax, size, pad, patch, release, rows16, rows8, gray, mask_key, img
):
    """``_raster`` for point sets with non-finite points, which are skipped; plain scalar code."""
    flat = img.reshape(-1)
    flat[:] = 0
    sx, sy, origin = _fit(xmin, xmax, ymin, ymax, size, pad, patch, release)
    usize = np.uint64(size)
    g = np.uint8(gray)
    for k in range(iterations):
        x = np.float64(xs[k])
        y = np.float64(ys[k])
        if not (np.abs(x) < np.inf and np.abs(y) < np.inf):
            continue
        p = np.uint64(origin + np.int64((x - xmin) * sx) - np.int64((y - ymin) * sy) * size)
        if patch:
            _paste(flat, p, _mask_row(_mix(mask_key, np.uint64(k // 4)), k % 4), usize, rows16, rows8)
        else:
            flat[p] = g


def _patch_rows(gray: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows of every 3x3 mask: ``rows16[4 m + r]`` holds pixels 0-1 of row r (as the two
    bytes in memory order), ``rows8[4 m + r]`` pixel 2; bit 3 r + c of m is pixel (r, c)."""
    m = np.arange(512)[:, None, None]
    r = np.arange(4)[None, :, None]
    c = np.arange(3)[None, None, :]
    bits = (r < 3) & (((m >> (3 * r + c)) & 1) == 1)
    pix = np.where(bits, gray, 0).astype(np.uint8)  # (512, 4, 3); row 3 is padding
    rows16 = np.ascontiguousarray(pix[:, :, :2]).view(np.uint16).reshape(-1)
    rows8 = np.ascontiguousarray(pix[:, :, 2]).reshape(-1)
    return rows16, rows8


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_BYTES = np.uint64(0x0101010101010101)
_EVEN = np.uint64(0x00FF00FF00FF00FF)
_SHORTS = np.uint64(0x0001000100010001)


@numba.njit(cache=True, nogil=True)
def _count_nonzero(img):
    """Nonzero bytes, 8 at a time (SWAR): bit 7 of ((w & 0x7f..) + 0x7f..) | w is set iff the
    byte is nonzero; per-byte counts are summed in a uint64 for 255 words, then folded."""
    flat = img.reshape(-1)
    nw = flat.shape[0] // 8
    words = flat[: nw * 8].view(np.uint64)
    n = 0
    for b in range(0, nw, 255):
        ub = np.uint64(b)
        acc = np.uint64(0)
        for i in range(min(255, nw - b)):
            w = words[ub + np.uint64(i)]
            acc += ((((w & _LOW7) + _LOW7) | w) >> np.uint64(7)) & _BYTES
        acc = (acc & _EVEN) + ((acc >> np.uint64(8)) & _EVEN)  # 4 counts <= 510 in 16-bit lanes
        n += (acc * _SHORTS) >> np.uint64(48)
    for i in range(nw * 8, flat.shape[0]):
        n += flat[i] != 0
    return n


class Renderer:
    """Renders systems with fixed settings, reusing its buffers across images."""

    def __init__(self, settings: RenderSettings = RenderSettings()):
        self.settings = settings
        self._xs = np.empty(self._capacity(settings.iterations), np.float32)
        self._ys = np.empty_like(self._xs)
        self._release = settings.framing == "release"
        # release framing: point 0 is the start point (0, 0), the orbit fills the points after it
        self._orbit_xs, self._orbit_ys = (self._xs[1:], self._ys[1:]) if self._release else (self._xs, self._ys)
        self._state = np.empty(6 * CHAINS)
        self._draws = np.empty(_BLOCK, np.uint32)
        self._pos = np.zeros(_BLOCK + _AHEAD, np.int64)  # pixel index of each point of a block
        self._rows16, self._rows8 = _patch_rows(settings.gray)

    @staticmethod
    def _capacity(iterations: int) -> int:
        return (iterations + CHAINS - 1) // CHAINS * CHAINS

    def render(self, ifs: IFS, mask_key: int, map_key: int, out: np.ndarray | None = None) -> np.ndarray:
        """One ``(size, size)`` uint8 image of ``ifs``. Writes into ``out`` when given."""
        s = self.settings
        if out is None:
            out = np.empty((s.size, s.size), np.uint8)
        elif out.shape != (s.size, s.size) or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint8 array of shape ({s.size}, {s.size})")
        maps, cum = _map_tuples(ifs)
        release = self._release
        finite, xmin, xmax, ymin, ymax = _orbit(
            maps, cum, s.iterations - int(release), np.uint64(map_key), self._orbit_xs, self._orbit_ys, self._state, self._draws
        )
        if release:  # the origin is one of the points: drawn first, and inside the fitted box
            self._xs[0] = self._ys[0] = 0.0
            xmin, xmax, ymin, ymax = min(xmin, 0.0), max(xmax, 0.0), min(ymin, 0.0), max(ymax, 0.0)
        patch = s.draw == "patch"
        args = (s.size, s.pad, patch, release, self._rows16, self._rows8, s.gray, np.uint64(mask_key), out)
        if finite:
            _raster(self._xs, self._ys, s.iterations, xmin, xmax, ymin, ymax, *args, self._pos)
            return out
        count, xmin, xmax, ymin, ymax = _finite_box(self._xs, self._ys, s.iterations)
        if count == 0:
            out[:] = 0
            return out
        _raster_checked(self._xs, self._ys, s.iterations, xmin, xmax, ymin, ymax, *args)
        return out


def _thresholds(probs: np.ndarray) -> np.ndarray:
    """Cumulative map probabilities as 32-bit integer thresholds (N - 1 of them)."""
    p = np.asarray(probs, dtype=np.float64)
    cum = np.cumsum(p / p.sum())[:-1]
    return np.minimum(np.round(cum * 2.0**32), 2.0**32).astype(np.uint64)


def _map_tuples(ifs: IFS) -> tuple[tuple, tuple]:
    """The maps and the thresholds of :func:`_thresholds` as tuples of Python numbers.

    numba compiles the orbit once per N and unrolls the map choice. The thresholds are computed
    here with the same IEEE operations as :func:`_thresholds` (numpy's sum, then a sequential
    cumulative sum, round half to even, clip), without numpy's per-call overhead. A single map
    is padded with a copy of itself behind a threshold that no 32-bit draw reaches.
    """
    maps = tuple(map(tuple, ifs.coeffs.tolist()))
    probs = ifs.probs.tolist()
    total = float(ifs.probs.sum())
    cum = []
    acc = 0.0
    for p in probs[:-1]:
        if not (0.0 <= p < np.inf and 0.0 < total < np.inf):  # odd input: let numpy decide
            cum = [min(int(c), 1 << 32) for c in _thresholds(ifs.probs)]
            break
        acc += p / total
        cum.append(min(round(acc * 4294967296.0), 4294967296))
    if not cum:
        return maps * 2, (1 << 32,)
    return maps, tuple(cum)


def fill_rate(img: np.ndarray) -> float:
    """Fraction of nonzero pixels."""
    flat = np.ascontiguousarray(img)
    if flat.ctypes.data % 8:  # _count_nonzero reads 8-byte words
        flat = flat.copy()
    return _count_nonzero(flat) / img.size


def render(ifs: IFS, settings: RenderSettings = RenderSettings(), mask_key: int = 0, map_key: int = 0) -> np.ndarray:
    """Render one image (convenience wrapper; use :class:`Renderer` in loops)."""
    return Renderer(settings).render(ifs, mask_key, map_key)
