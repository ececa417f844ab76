"""LIEP perturbations: bounded multiplicative noise on every coefficient, base probabilities kept."""

import numpy as np
import pytest

from raysweep.config import ConfigError
from raysweep.fractal import perturb, reweight, sample_ifs


@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5, 0.99])
def test_perturbation_stays_within_delta(delta):
    base = sample_ifs(2, 3.5, np.random.default_rng(0))
    ratios = []
    for seed in range(300):
        cls = perturb(base, delta, np.random.default_rng(seed))
        r = cls.coeffs / base.coeffs - 1.0
        assert np.all(np.abs(r) <= delta + 1e-12)
        np.testing.assert_array_equal(cls.probs, base.probs)
        ratios.append(r)
    ratios = np.array(ratios)
    # every one of the 6N coefficients moves, and the draws fill most of [-delta, delta]
    assert np.all(ratios.std(axis=0) > delta / 4)
    assert ratios.min() < -0.9 * delta and ratios.max() > 0.9 * delta


def test_perturbation_is_deterministic_by_seed():
    base = sample_ifs(2, 3.5, np.random.default_rng(0))
    assert perturb(base, 0.1, np.random.default_rng(7)) == perturb(base, 0.1, np.random.default_rng(7))
    assert perturb(base, 0.1, np.random.default_rng(7)) != perturb(base, 0.1, np.random.default_rng(8))


@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1, 2.0])
def test_delta_outside_the_open_interval_is_rejected(delta):
    base = sample_ifs(2, 3.5, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"delta=.*allowed: the open interval \(0, 1\)"):
        perturb(base, delta, np.random.default_rng(0))


def test_fractaldb_reweighting_changes_exactly_one_coefficient():
    base = sample_ifs(4, 5.0, np.random.default_rng(3))
    for seed in range(50):
        inst = reweight(base, np.random.default_rng(seed))
        changed = inst.coeffs != base.coeffs
        assert changed.sum() == 1
        ratio = (inst.coeffs[changed] / base.coeffs[changed])[0]
        assert min(abs(ratio - w) for w in (0.8, 0.9, 1.1, 1.2)) < 1e-12
