"""The contract every data source keeps, parametrised over all of them: deterministic class images
in range, a dataset spec that covers everything its pixels depend on, and a one-line pre-flight."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from raysweep.config import ConfigError, DataConfig
from raysweep.config.schema import DATA_SOURCES
from raysweep.render.sources import SOURCES, create_source, dataset_label, source
from raysweep.render.spec import resolve_spec

SMALL = {"L": 3, "size": 32, "pad": 4, "iterations": 3000}
CONFIGS = {
    "1p-frac": DataConfig(source="1p-frac", **SMALL),
    "fractaldb": DataConfig(source="fractaldb", instances=2, **SMALL),
    "ofdb": DataConfig(source="ofdb", **SMALL),
    "real": DataConfig(source="real", image="skimage:camera", **SMALL),
}
# another valid value of every data setting
OTHER = {"sigma": 4.0, "sigma_jitter": 0.05, "delta": 0.2, "L": 4, "n_maps": 3, "n_maps_max": 5, "size": 40, "pad": 5,
         "iterations": 4000, "draw": "point", "gray": 200, "fixed_map_sequence": False, "fill_threshold": 0.02,
         "max_redraws": 50, "instances": 1, "seed": 1, "image": "skimage:astronaut", "representation": "canny",
         "warp": "elastic", "framing": "release", "materialize": False, "fresh_instances": True, "stream_actors": 2}


def test_every_source_the_schema_allows_has_one_entry():
    assert set(SOURCES) == set(DATA_SOURCES) == set(CONFIGS)
    assert set(OTHER) | {"source"} == {f.name for f in dataclasses.fields(DataConfig)}, "the table covers every data setting"


def _pixels(cfg: DataConfig) -> list[bytes]:
    src = create_source(cfg)
    return [item.image.tobytes() for label in range(min(2, src.num_classes)) for item in src.render_class(label)]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_class_images_are_deterministic_and_in_range(name):
    cfg = CONFIGS[name]
    src = create_source(cfg)
    assert src.num_classes == cfg.L
    for label in range(cfg.L):
        items = src.render_class(label)
        assert [i.instance for i in items] == list(range(cfg.instances)) and all(i.label == label for i in items)
        for item in items:
            assert item.image.dtype == np.uint8 and item.image.shape[:2] == (cfg.size, cfg.size)
            assert item.image.ndim == 2 or item.image.shape[2] == 3
            assert item.image.any(), "a class image is never empty"
    assert _pixels(cfg) == _pixels(cfg), "the same settings render the same bytes, in a fresh source"
    assert resolve_spec(cfg) == resolve_spec(cfg)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_spec_covers_everything_the_pixels_depend_on(name):
    """A setting outside the source's spec fields never changes its pixels; one inside changes the
    dataset's address."""
    cfg = CONFIGS[name]
    fields = set(SOURCES[name].fields)
    base_pixels, base_hash = _pixels(cfg), resolve_spec(cfg).hash
    checked = 0
    for key, value in OTHER.items():
        if getattr(cfg, key) == value:
            continue
        try:
            other = dataclasses.replace(cfg, **{key: value})
        except ConfigError:  # not a valid combination for this source (e.g. instances for OFDB)
            continue
        if key in fields:
            assert resolve_spec(other).hash != base_hash, f"{name}: {key} is in the spec, so it changes the address"
        else:
            assert _pixels(other) == base_pixels, f"{name}: {key} is not in the spec but changed the pixels"
            checked += 1
    assert checked >= 3


def test_a_real_images_pixels_are_part_of_its_identity(tmp_path):
    from PIL import Image

    path = tmp_path / "image.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(path)
    cfg = DataConfig(source="real", image=str(path), **SMALL)
    first = resolve_spec(cfg).hash
    Image.fromarray(np.full((32, 32, 3), 91, np.uint8)).save(path)
    assert resolve_spec(cfg).hash != first, "the same path with other pixels is another dataset"


@pytest.mark.parametrize("name,cfg,message", [
    ("1p-frac", DataConfig(source="1p-frac", sigma=0.5, fill_threshold=0.9, max_redraws=2, **SMALL), "fill"),
    ("real", DataConfig(source="real", image="/nonexistent/image.png", **SMALL), "data.image='/nonexistent/image.png': no such file"),
])
def test_each_sources_preflight_is_one_line(name, cfg, message):
    with pytest.raises(ConfigError) as e:
        source(name).check(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_source_names_its_datasets(name):
    label = dataset_label(CONFIGS[name])
    assert label and "\n" not in label
