"""The chaos-game renderer, compiled with numba.

``render(ifs, settings, mask_key, map_key)`` is a pure function: the same system, settings and
keys give the same bytes on any machine (integer hashing for randomness, IEEE float64 arithmetic
without fast-math, no threads).

Semantics (the 1p-frac release, restated in the method page §4):

* The orbit starts at (0, 0); at each step map ``i`` is chosen with probability ``p_i``. The map
  choices come from ``map_key`` alone, so classes rendered with one ``map_key`` share the same
  sequence of choices and differ only by their parameters (the release fixes its seed the same
  way). ``iterations`` points are drawn in total.
* To keep the CPU busy, the orbit is run as ``CHAINS`` interleaved chains that each start at the
  start point (the recurrence ``x <- a x + b y + e`` is a serial dependency; four independent
  chains fill its latency). Every point of every chain lies on the same attractor after a few
  steps, exactly as the release's single chain does; the first few points of each chain are its
  transient, as the release's first points are.
* Points that are not finite (a diverging perturbed system) are dropped. The rest are fitted into
  ``size x size`` pixels with ``pad`` pixels of margin, each axis scaled on its own (as the
  release does), y pointing up.
* ``patch`` draws each point as a 3x3 patch whose binary mask is random in 1..511 (from
  ``mask_key``), gray on black, later points overwriting earlier ones (the release pastes
  patches); ``point`` draws single pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from raysweep.fractal.ifs import IFS

CHAINS = 4
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_U32 = np.uint64(0xFFFFFFFF)
_U16 = np.uint64(0xFFFF)


@dataclass(frozen=True)
class RenderSettings:
    """How a system becomes pixels (the release: 512 px, pad 6, 100,000 points, patches, gray 127)."""

    size: int = 512
    pad: int = 6
    iterations: int = 100_000
    draw: str = "patch"
    gray: int = 127

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size={self.size} is out of range; allowed: >= 8")
        if self.draw not in ("patch", "point"):
            raise ValueError(f"draw={self.draw!r} is not allowed; choose one of: patch, point")
        if self.pad < (1 if self.draw == "patch" else 0) or self.size - 2 * self.pad < 2:
            raise ValueError(f"pad={self.pad} does not fit size={self.size} with draw={self.draw}")
        if self.iterations < 1:
            raise ValueError(f"iterations={self.iterations} is out of range; allowed: >= 1")
        if not 1 <= self.gray <= 255:
            raise ValueError(f"gray={self.gray} is out of range; allowed: 1..255")


@numba.njit(inline="always")
def _mix(key, counter):
    """splitmix64 of (key, counter): 64 well-mixed bits, no state carried between calls."""
    z = key + _GOLDEN * (counter + np.uint64(1))
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _pick(u32, cum):
    """Index of the map for a 32-bit uniform draw, given cumulative thresholds (branch-free)."""
    idx = 0
    for j in range(cum.shape[0]):
        idx += u32 >= cum[j]
    return idx


@numba.njit(cache=True, nogil=True)
def _orbit(coeffs, cum, iterations, map_key, xs, ys):
    """Run the chaos game into ``xs``/``ys``; return the count of points and their bounding box."""
    steps = (iterations + CHAINS - 1) // CHAINS
    x0 = 0.0
    y0 = 0.0
    x1 = 0.0
    y1 = 0.0
    x2 = 0.0
    y2 = 0.0
    x3 = 0.0
    y3 = 0.0
    for t in range(steps):
        r01 = _mix(map_key, np.uint64(2 * t))
        r23 = _mix(map_key, np.uint64(2 * t + 1))
        i0 = _pick(r01 & _U32, cum)
        i1 = _pick(r01 >> np.uint64(32), cum)
        i2 = _pick(r23 & _U32, cum)
        i3 = _pick(r23 >> np.uint64(32), cum)
        nx0 = coeffs[i0, 0] * x0 + coeffs[i0, 1] * y0 + coeffs[i0, 4]
        ny0 = coeffs[i0, 2] * x0 + coeffs[i0, 3] * y0 + coeffs[i0, 5]
        nx1 = coeffs[i1, 0] * x1 + coeffs[i1, 1] * y1 + coeffs[i1, 4]
        ny1 = coeffs[i1, 2] * x1 + coeffs[i1, 3] * y1 + coeffs[i1, 5]
        nx2 = coeffs[i2, 0] * x2 + coeffs[i2, 1] * y2 + coeffs[i2, 4]
        ny2 = coeffs[i2, 2] * x2 + coeffs[i2, 3] * y2 + coeffs[i2, 5]
        nx3 = coeffs[i3, 0] * x3 + coeffs[i3, 1] * y3 + coeffs[i3, 4]
        ny3 = coeffs[i3, 2] * x3 + coeffs[i3, 3] * y3 + coeffs[i3, 5]
        x0, y0, x1, y1, x2, y2, x3, y3 = nx0, ny0, nx1, ny1, nx2, ny2, nx3, ny3
        k = CHAINS * t
        xs[k] = x0
        ys[k] = y0
        xs[k + 1] = x1
        ys[k + 1] = y1
        xs[k + 2] = x2
        ys[k + 2] = y2
        xs[k + 3] = x3
        ys[k + 3] = y3
    # bounding box over finite points
    xmin = np.inf
    xmax = -np.inf
    ymin = np.inf
    ymax = -np.inf
    finite = 0
    for k in range(iterations):
        x = xs[k]
        y = ys[k]
        if np.abs(x) < np.inf and np.abs(y) < np.inf:
            finite += 1
            xmin = min(xmin, x)
            xmax = max(xmax, x)
            ymin = min(ymin, y)
            ymax = max(ymax, y)
    return finite, xmin, xmax, ymin, ymax


@numba.njit(cache=True, nogil=True)
def _raster(xs, ys, iterations, xmin, xmax, ymin, ymax, size, pad, patch, gray, mask_key, img):
    """Fit the points into ``img`` (size x size, zeroed here) and draw them."""
    flat = img.reshape(-1)
    flat[:] = 0
    span = float(size - 1 - 2 * pad)
    sx = span / (xmax - xmin) if xmax > xmin else 0.0
    sy = span / (ymax - ymin) if ymax > ymin else 0.0
    ox = pad if xmax > xmin else (size - 1) // 2
    oy = pad if ymax > ymin else (size - 1) // 2
    top = size - 1
    g = np.uint8(gray)
    if patch:
        masks = np.uint64(0)
        for k in range(iterations):
            if (k & 3) == 0:
                masks = _mix(mask_key, np.uint64(k >> 2))
            # a mask in 1..511 from 16 random bits
            m = np.uint64(1) + (((masks >> np.uint64(16 * (k & 3))) & _U16) * np.uint64(511) >> np.uint64(16))
            x = xs[k]
            y = ys[k]
            if not (np.abs(x) < np.inf and np.abs(y) < np.inf):
                continue
            px = ox + np.int64((x - xmin) * sx)
            py = top - (oy + np.int64((y - ymin) * sy))
            base = (py - 1) * size + (px - 1)
            for r in range(3):
                row = base + r * size
                bits = m >> np.uint64(3 * r)
                flat[row] = g * np.uint8(bits & np.uint64(1))
                flat[row + 1] = g * np.uint8((bits >> np.uint64(1)) & np.uint64(1))
                flat[row + 2] = g * np.uint8((bits >> np.uint64(2)) & np.uint64(1))
    else:
        for k in range(iterations):
            x = xs[k]
            y = ys[k]
            if not (np.abs(x) < np.inf and np.abs(y) < np.inf):
                continue
            px = ox + np.int64((x - xmin) * sx)
            py = top - (oy + np.int64((y - ymin) * sy))
            flat[py * size + px] = g


@numba.njit(cache=True, nogil=True)
def _count_nonzero(img):
    flat = img.reshape(-1)
    n = 0
    for i in range(flat.shape[0]):
        n += flat[i] != 0
    return n


class Renderer:
    """Renders systems with fixed settings, reusing its point buffers across images."""

    def __init__(self, settings: RenderSettings = RenderSettings()):
        self.settings = settings
        self._xs = np.empty(self._capacity(settings.iterations))
        self._ys = np.empty_like(self._xs)

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
        cum = _thresholds(ifs.probs)
        finite, xmin, xmax, ymin, ymax = _orbit(ifs.coeffs, cum, s.iterations, np.uint64(map_key), self._xs, self._ys)
        if finite == 0:
            out[:] = 0
            return out
        _raster(
            self._xs, self._ys, s.iterations, xmin, xmax, ymin, ymax,
            s.size, s.pad, s.draw == "patch", s.gray, np.uint64(mask_key), out,
        )
        return out


def _thresholds(probs: np.ndarray) -> np.ndarray:
    """Cumulative map probabilities as 32-bit integer thresholds (N - 1 of them)."""
    p = np.asarray(probs, dtype=np.float64)
    cum = np.cumsum(p / p.sum())[:-1]
    return np.minimum(np.round(cum * 2.0**32), 2.0**32).astype(np.uint64)


def fill_rate(img: np.ndarray) -> float:
    """Fraction of nonzero pixels."""
    return _count_nonzero(np.ascontiguousarray(img)) / img.size


def render(ifs: IFS, settings: RenderSettings = RenderSettings(), mask_key: int = 0, map_key: int = 0) -> np.ndarray:
    """Render one image (convenience wrapper; use :class:`Renderer` in loops)."""
    return Renderer(settings).render(ifs, mask_key, map_key)
