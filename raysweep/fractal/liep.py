"""Local perturbations of one IFS (LIEP): the classes of 1p-frac and FractalDB's instances."""

from __future__ import annotations

import numpy as np

from raysweep.config.errors import ConfigError
from raysweep.fractal.ifs import IFS

#: FractalDB's instance weights: one coefficient of one map re-weighted by one of these.
FRACTALDB_WEIGHTS = (0.8, 0.9, 1.1, 1.2)


def perturb(base: IFS, delta: float, rng: np.random.Generator) -> IFS:
    """``theta_l = theta * (1 + eps)``, eps ~ U[-delta, delta] for each of the 6N coefficients.

    The probabilities stay those of the base system (as in the release).
    """
    if not (0.0 < delta < 1.0):
        raise ConfigError(f"delta={delta!r} is out of range; allowed: the open interval (0, 1)")
    eps = rng.uniform(-delta, delta, base.coeffs.shape)
    return IFS(base.coeffs * (1.0 + eps), base.probs)


def reweight(base: IFS, rng: np.random.Generator) -> IFS:
    """A FractalDB-style instance: one coefficient of one map multiplied by a weight in 0.8..1.2."""
    coeffs = base.coeffs.copy()
    i = rng.integers(base.n_maps)
    j = rng.integers(6)
    coeffs[i, j] *= FRACTALDB_WEIGHTS[rng.integers(len(FRACTALDB_WEIGHTS))]
    return IFS(coeffs, base.probs)
