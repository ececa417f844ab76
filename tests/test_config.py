"""The schema: defaults, overrides, YAML composition, and one-line errors for bad input."""

import pytest

from raysweep.config import Config, ConfigError, load_config, schema_keys

PUBLIC_KEYS = [
    "data.source", "data.sigma", "data.delta", "data.L", "data.n_maps", "data.size", "data.iterations",
    "data.instances", "data.seed", "model.name", "model.img_size", "model.patch_size", "pretrain.steps",
    "pretrain.batch_size", "score.dataset", "score.data_root", "score.mode", "score.probe_blocks",
    "score.epochs", "score.checkpoint", "storage", "name", "seed",
]


def test_public_keys_exist():
    assert set(PUBLIC_KEYS) <= set(schema_keys())


def test_defaults_are_the_release_settings():
    cfg = load_config()
    assert isinstance(cfg, Config)
    d = cfg.data
    assert (d.source, d.sigma, d.delta, d.L, d.n_maps) == ("1p-frac", 3.5, 0.1, 1000, 2)
    assert (d.size, d.pad, d.iterations, d.draw, d.gray, d.fill_threshold) == (512, 6, 100_000, "patch", 127, 0.05)
    assert cfg.model.name == "vit_tiny_patch16_224"


def test_overrides_are_typed():
    cfg = load_config(["data.sigma=4", "data.L=16", "data.draw=point", "score.checkpoint=none", "name=x"])
    assert cfg.data.sigma == 4.0 and isinstance(cfg.data.sigma, float)
    assert cfg.data.L == 16 and cfg.data.draw == "point"
    assert cfg.score.checkpoint is None and cfg.name == "x"


def test_yaml_then_overrides(tmp_path):
    (tmp_path / "common.yaml").write_text("data:\n  delta: 0.2\n")
    (tmp_path / "exp.yaml").write_text("defaults:\n  - common\n  - _self_\ndata:\n  sigma: 4.5\n  L: 32\nname: exp\n")
    cfg = load_config(["data.L=8"], yaml_path=tmp_path / "exp.yaml")
    assert (cfg.data.sigma, cfg.data.delta, cfg.data.L, cfg.name) == (4.5, 0.2, 8, "exp")


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.sigma=6.0"], r"data.sigma=6.0 is out of range; allowed: the open interval \(0, 6\)"),
        (["data.sigma=0"], r"data.sigma=0.0 is out of range"),
        (["data.n_maps=3", "data.sigma=9.5"], r"open interval \(0, 9\)"),
        (["data.delta=1"], r"data.delta=1.0 is out of range; allowed: the open interval \(0, 1\)"),
        (["data.delta=0"], r"data.delta=0.0 is out of range"),
        (["data.L=1"], r"data.L=1 is out of range; allowed: >= 2"),
        (["data.n_maps=0"], r"data.n_maps=0 is out of range; allowed: >= 1"),
        (["data.size=7"], r"data.size=7 is out of range; allowed: >= 8"),
        (["data.iterations=0"], r"data.iterations=0 is out of range; allowed: >= 1"),
        (["data.source=imagenet"], r"data.source='imagenet' is not allowed; choose one of: 1p-frac, fractaldb, ofdb"),
        (["data.draw=line"], r"choose one of: patch, point"),
        (["data.sigma_jitter=0.2", "data.sigma=5.9"], r"reaches 3N = 6"),
        (["data.sigmaa=3"], r"unknown config key 'data.sigmaa'; did you mean 'data.sigma'\?"),
        (["dta.sigma=3"], r"unknown config key 'dta.sigma'.*valid keys: data, model"),
        (["data.L=many"], r"data.L='many': Value 'many' of type 'str' could not be converted to Integer"),
        (["data"], r"is not a key=value override"),
        (["data=3"], r"config key 'data' is a section"),
        (["data.sigma=1,2"], r"is a sweep"),
        (["score.mode=probe"], r"score.mode='probe' is not allowed; choose one of: finetune, linear_probe"),
    ],
)
def test_bad_input_is_one_line_naming_value_and_range(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(overrides)
    assert "\n" not in str(info.value)


def test_missing_or_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(yaml_path=tmp_path / "nope.yaml")
    (tmp_path / "typo.yaml").write_text("data:\n  detla: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'data.detla'; did you mean 'data.delta'\?"):
        load_config(yaml_path=tmp_path / "typo.yaml")
