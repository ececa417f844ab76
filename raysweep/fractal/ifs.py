"""Iterated function systems and sigma-factor sampling (Anderson & Farrell, WACV 2022).

An IFS is N affine maps ``w_i(p) = A_i p + b_i``. We store them as an ``(N, 6)`` float64 array of
the coefficients ``(a, b, c, d, e, f)`` with ``A_i = [[a, b], [c, d]]`` and ``b_i = (e, f)``, the
order used by FractalDB and the 1p-frac release, plus map probabilities ``p_i``.

The sigma-factor of a system is ``sum_i (s_i1 + 2 s_i2)`` over the singular values
``s_i1 >= s_i2`` of each ``A_i``; every map is a contraction when all singular values lie in
[0, 1], so valid targets lie in (0, 3N).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysweep.config.errors import ConfigError


@dataclass(frozen=True, eq=False)
class IFS:
    """N affine maps (``coeffs``: (N, 6) rows of a, b, c, d, e, f) and their probabilities."""

    coeffs: np.ndarray
    probs: np.ndarray

    def __post_init__(self) -> None:
        coeffs = np.ascontiguousarray(self.coeffs, dtype=np.float64).reshape(-1, 6)
        probs = np.ascontiguousarray(self.probs, dtype=np.float64).reshape(-1)
        if coeffs.shape[0] < 1 or probs.shape[0] != coeffs.shape[0]:
            raise ValueError(f"IFS needs N >= 1 maps and N probabilities, got {coeffs.shape[0]} and {probs.shape[0]}")
        coeffs.setflags(write=False)
        probs.setflags(write=False)
        object.__setattr__(self, "coeffs", coeffs)
        object.__setattr__(self, "probs", probs)

    @property
    def n_maps(self) -> int:
        return self.coeffs.shape[0]

    @property
    def linear(self) -> np.ndarray:
        """The (N, 2, 2) linear parts A_i."""
        return self.coeffs[:, :4].reshape(-1, 2, 2)

    @property
    def translation(self) -> np.ndarray:
        """The (N, 2) translations b_i."""
        return self.coeffs[:, 4:]

    def sigma_factor(self) -> float:
        return sigma_factor(self.linear)

    def to_list(self) -> list[list[float]]:
        """Rows ``[a, b, c, d, e, f, p]``: the parameters as stored in dataset manifests."""
        return np.concatenate([self.coeffs, self.probs[:, None]], axis=1).tolist()

    @classmethod
    def from_list(cls, rows) -> "IFS":
        arr = np.asarray(rows, dtype=np.float64)
        return cls(arr[:, :6], arr[:, 6])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IFS) and np.array_equal(self.coeffs, other.coeffs) and np.array_equal(self.probs, other.probs)

    __hash__ = None  # type: ignore[assignment]


def sigma_factor(linear: np.ndarray) -> float:
    """``sum_i (s_i1 + 2 s_i2)`` for the (N, 2, 2) linear parts."""
    s = np.linalg.svd(np.asarray(linear, dtype=np.float64), compute_uv=False)  # (N, 2), descending
    return float(np.sum(s[:, 0] + 2.0 * s[:, 1]))


def map_probabilities(linear: np.ndarray) -> np.ndarray:
    """``p_i ∝ |det A_i|`` (uniform when every map is singular)."""
    det = np.abs(np.linalg.det(np.asarray(linear, dtype=np.float64)))
    total = det.sum()
    if not np.isfinite(total) or total <= 0.0:
        return np.full(len(det), 1.0 / len(det))
    return det / total


def sample_singular_values(n_maps: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Draw ``(N, 2)`` singular values with ``0 <= s2 <= s1 <= 1`` and ``sum(s1 + 2 s2) == sigma``.

    Pairs are drawn one at a time; each value is uniform over the interval that keeps the rest of
    the constraint satisfiable: after a pair, ``remaining`` is what the later pairs must add up to,
    and each later pair can add anything in [0, 3]. The last pair takes the exact remainder.
    """
    if n_maps < 1:
        raise ConfigError(f"n_maps={n_maps} is out of range; allowed: >= 1")
    if not (0.0 < sigma < 3.0 * n_maps):
        raise ConfigError(f"sigma={sigma!r} is out of range; allowed: the open interval (0, {3 * n_maps}) for N={n_maps}")
    s = np.empty((n_maps, 2))
    remaining = float(sigma)
    for i in range(n_maps - 1):
        rest = 3.0 * (n_maps - 1 - i)  # what the later pairs can contribute at most
        low = remaining - rest  # this pair must contribute at least this much
        s1 = rng.uniform(max(0.0, low / 3.0), min(1.0, remaining))
        s2 = rng.uniform(max(0.0, (low - s1) / 2.0), min(s1, (remaining - s1) / 2.0))
        s[i] = s1, s2
        remaining -= s1 + 2.0 * s2
    # last pair: s1 + 2 s2 = remaining exactly, with 0 <= s2 <= s1 <= 1
    s2 = rng.uniform(max(0.0, (remaining - 1.0) / 2.0), remaining / 3.0)
    s[-1] = remaining - 2.0 * s2, s2
    return s


def random_orthogonal(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` random 2x2 orthogonal matrices: a rotation composed with random axis sign flips."""
    angle = rng.uniform(-np.pi, np.pi, count)
    flips = np.where(rng.random((count, 2)) < 0.5, -1.0, 1.0)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (count, 2, 2)
    return rot * flips[:, None, :]  # R @ diag(flips)


def sample_ifs(
    n_maps: int,
    sigma: float,
    rng: np.random.Generator,
    sigma_jitter: float = 0.0,
    translation_bound: float = 1.0,
) -> IFS:
    """A random IFS with the given sigma-factor (drawn once from ``sigma ± sigma_jitter``).

    ``A_i = U_i diag(s_i1, s_i2) V_i`` with random orthogonal U_i, V_i; ``b_i`` uniform in
    ``[-translation_bound, translation_bound]^2``; ``p_i ∝ |det A_i|``.
    """
    target = float(sigma)
    if sigma_jitter > 0.0:
        target = rng.uniform(sigma - sigma_jitter, sigma + sigma_jitter)
    u = random_orthogonal(rng, n_maps)
    v = random_orthogonal(rng, n_maps)
    s = sample_singular_values(n_maps, target, rng)
    linear = u * s[:, None, :] @ v  # U diag(s) V
    b = rng.uniform(-translation_bound, translation_bound, (n_maps, 2))
    coeffs = np.concatenate([linear.reshape(n_maps, 4), b], axis=1)
    return IFS(coeffs, map_probabilities(linear))
