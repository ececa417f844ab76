"""sigma-factor sampling: the constraint holds exactly, every map contracts, draws are seeded."""

import numpy as np
import pytest

from raysweep.config import ConfigError
from raysweep.fractal import IFS, map_probabilities, sample_ifs, sample_singular_values, sigma_factor


@pytest.mark.parametrize("n_maps", [1, 2, 3, 4, 7])
def test_singular_values_satisfy_the_constraint_over_many_seeds(n_maps):
    rng = np.random.default_rng(n_maps)
    for trial in range(400):
        sigma = rng.uniform(0.0, 3.0 * n_maps)
        if sigma == 0.0:
            continue
        s = sample_singular_values(n_maps, sigma, np.random.default_rng(trial))
        assert s.shape == (n_maps, 2)
        assert np.all(s >= 0.0) and np.all(s <= 1.0 + 1e-12)
        assert np.all(s[:, 1] <= s[:, 0] + 1e-12)
        assert abs(np.sum(s[:, 0] + 2.0 * s[:, 1]) - sigma) < 1e-9


@pytest.mark.parametrize("n_maps,sigma", [(2, 3.5), (2, 0.05), (2, 5.95), (1, 1.5), (5, 9.0), (7, 6.25)])
def test_sampled_systems_have_the_target_sigma_and_contract(n_maps, sigma):
    for seed in range(100):
        ifs = sample_ifs(n_maps, sigma, np.random.default_rng(seed))
        assert ifs.n_maps == n_maps
        assert abs(ifs.sigma_factor() - sigma) < 1e-9
        sv = np.linalg.svd(ifs.linear, compute_uv=False)
        assert np.all(sv <= 1.0 + 1e-9), "every map is a contraction"
        assert np.all(np.abs(ifs.translation) <= 1.0)
        assert abs(ifs.probs.sum() - 1.0) < 1e-12


def test_probabilities_are_proportional_to_absolute_determinants():
    ifs = sample_ifs(3, 4.0, np.random.default_rng(5))
    det = np.abs(np.linalg.det(ifs.linear))
    np.testing.assert_allclose(ifs.probs, det / det.sum(), rtol=1e-12)
    # singular maps only: uniform rather than a division by zero
    np.testing.assert_allclose(map_probabilities(np.zeros((2, 2, 2))), [0.5, 0.5])


def test_sampling_is_deterministic_by_seed():
    a = sample_ifs(2, 3.5, np.random.default_rng(42))
    b = sample_ifs(2, 3.5, np.random.default_rng(42))
    c = sample_ifs(2, 3.5, np.random.default_rng(43))
    assert a == b
    assert a != c


def test_sigma_jitter_draws_within_the_band():
    sigmas = [sample_ifs(2, 3.5, np.random.default_rng(s), sigma_jitter=0.1).sigma_factor() for s in range(200)]
    assert min(sigmas) >= 3.4 - 1e-9 and max(sigmas) <= 3.6 + 1e-9
    assert max(sigmas) - min(sigmas) > 0.1  # it really varies


@pytest.mark.parametrize("sigma", [0.0, -1.0, 6.0, 7.5, float("nan")])
def test_sigma_outside_the_open_interval_is_rejected(sigma):
    with pytest.raises(ConfigError, match=r"sigma=.*allowed: the open interval \(0, 6\)"):
        sample_singular_values(2, sigma, np.random.default_rng(0))


def test_ifs_round_trips_through_its_manifest_rows():
    ifs = sample_ifs(2, 3.5, np.random.default_rng(1))
    again = IFS.from_list(ifs.to_list())
    assert again == ifs
    assert abs(sigma_factor(again.linear) - 3.5) < 1e-9
