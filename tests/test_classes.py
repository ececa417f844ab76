"""Class systems: 1p-frac perturbations of one base, FractalDB/OFDB categories, bounded rejection."""

import hashlib

import numpy as np
import pytest

from raysweep.config import ConfigError, DataConfig
from raysweep.fractal import FractalDBClasses, OFDBClasses, OnePFracClasses, RenderFailure
from raysweep.render import create_source

SMALL = dict(size=64, pad=2, iterations=20_000)


def digest(img):
    return hashlib.sha256(img.tobytes()).hexdigest()


def test_classes_are_perturbations_of_one_base_within_delta():
    cfg = DataConfig(L=8, delta=0.1, **SMALL)
    classes = OnePFracClasses(cfg)
    base = classes.base.ifs
    assert abs(base.sigma_factor() - 3.5) < 1e-9
    for label in range(cfg.L):
        (item,) = classes.render_class(label)
        assert np.all(np.abs(item.ifs.coeffs / base.coeffs - 1.0) <= 0.1 + 1e-12)
        np.testing.assert_array_equal(item.ifs.probs, base.probs)
        assert item.fill >= cfg.fill_threshold


def test_a_class_renders_the_same_alone_in_any_order_or_process():
    cfg = DataConfig(L=6, **SMALL)
    forward = [digest(OnePFracClasses(cfg).render_class(i)[0].image) for i in range(6)]
    fresh = OnePFracClasses(cfg)
    backward = [digest(fresh.render_class(i)[0].image) for i in reversed(range(6))][::-1]
    assert forward == backward
    assert len(set(forward)) == 6
    other_seed = [digest(OnePFracClasses(DataConfig(L=6, seed=1, **SMALL)).render_class(i)[0].image) for i in range(6)]
    assert not set(other_seed) & set(forward)


def test_fill_rate_rejection_redraws_and_accepts_only_valid_images():
    # a threshold between the classes' fill rates: some classes need redraws, every accepted one passes
    probe = OnePFracClasses(DataConfig(L=30, fill_threshold=0.0, **SMALL))
    fills = sorted(probe.render_class(i)[0].fill for i in range(30))
    threshold = fills[len(fills) // 3]
    classes = OnePFracClasses(DataConfig(L=30, fill_threshold=threshold, max_redraws=200, **SMALL))
    items = [classes.render_class(i)[0] for i in range(30)]
    assert all(item.fill >= threshold for item in items)
    assert sum(item.redraws for item in items) > 0


def test_impossible_fill_threshold_fails_with_a_clear_bounded_error():
    classes = OnePFracClasses(DataConfig(L=4, fill_threshold=0.99, max_redraws=3, **SMALL))
    with pytest.raises(RenderFailure, match=r"fill rate >= data.fill_threshold=0.99 in data.max_redraws=3 draws"):
        classes.render_class(0)


def test_instances_share_the_class_system_but_not_the_pixels():
    classes = OnePFracClasses(DataConfig(L=3, instances=3, **SMALL))
    items = classes.render_class(1)
    assert [i.instance for i in items] == [0, 1, 2]
    assert all(i.ifs == items[0].ifs for i in items)
    assert len({digest(i.image) for i in items}) == 3


def test_fixed_map_sequence_is_shared_across_classes_unless_disabled():
    fixed = OnePFracClasses(DataConfig(L=3, **SMALL))
    assert fixed.map_key(0, 0) == fixed.map_key(2, 0) != fixed.map_key(0, 1)
    free = OnePFracClasses(DataConfig(L=3, fixed_map_sequence=False, **SMALL))
    assert free.map_key(0, 0) != free.map_key(2, 0)


def test_fractaldb_categories_are_independent_systems():
    classes = FractalDBClasses(DataConfig(source="fractaldb", L=12, n_maps_max=5, instances=2, **SMALL))
    firsts = [classes.render_class(c) for c in range(12)]
    ns = {items[0].ifs.n_maps for items in firsts}
    assert ns <= {2, 3, 4, 5} and len(ns) > 1
    for items in firsts:
        n = items[0].ifs.n_maps
        assert (5 + n) / 2 - 1e-9 <= items[0].ifs.sigma_factor() <= (6 + n) / 2 + 1e-9
        assert np.sum(items[1].ifs.coeffs != items[0].ifs.coeffs) == 1


def test_ofdb_is_one_instance_per_category():
    assert isinstance(create_source(DataConfig(source="ofdb", L=4, **SMALL)), OFDBClasses)
    with pytest.raises(ConfigError, match="data.instances=2 with data.source=ofdb"):
        DataConfig(source="ofdb", instances=2)


def test_registry_gives_each_source():
    assert isinstance(create_source(DataConfig(**SMALL)), OnePFracClasses)
    assert type(create_source(DataConfig(source="fractaldb", **SMALL))) is FractalDBClasses
