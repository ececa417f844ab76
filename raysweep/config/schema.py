"""The typed, validated configuration of raysweep: one schema for every command.

Every command takes Hydra-style ``key=value`` overrides of this schema (``data.sigma=3.5``).
The dotted names are the public interface; later stages add keys, they never rename them.
Each section validates itself in ``__post_init__`` so that an invalid value is reported, in one
line naming the value and what is allowed, before any rendering or cluster work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from raysweep.config.errors import ConfigError

DATA_SOURCES = ("1p-frac", "fractaldb", "ofdb", "real")
DRAW_MODES = ("patch", "point")
REPRESENTATIONS = ("rgb", "gray", "canny")
WARPS = ("affine", "elastic", "polynomial")
SCORE_DATASETS = ("cifar10", "cifar100", "imagefolder", "digits")
SCORE_MODES = ("finetune", "linear_probe")


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")


def _at_least(key: str, value, low) -> None:
    if value < low:
        raise ConfigError(f"{key}={value!r} is out of range; allowed: >= {low}")


def _open_interval(key: str, value: float, low: float, high: float) -> None:
    if not (low < value < high):  # also rejects NaN
        raise ConfigError(f"{key}={value!r} is out of range; allowed: the open interval ({low:g}, {high:g})")


@dataclass
class DataConfig:
    """What to render: the synthetic (or single real image) pre-training dataset."""

    source: str = "1p-frac"  # 1p-frac | fractaldb | ofdb | real
    sigma: float = 3.5  # sigma-factor of the base IFS, in (0, 3 * n_maps)
    sigma_jitter: float = 0.0  # draw sigma uniformly in [sigma - j, sigma + j] once (the release: 0.1)
    delta: float = 0.1  # LIEP perturbation strength, in (0, 1)
    L: int = 1000  # number of classes (perturbations for 1p-frac, categories for fractaldb/ofdb)
    n_maps: int = 2  # N, affine maps of the 1p-frac system
    n_maps_max: int = 7  # fractaldb/ofdb: N drawn per category from 2..n_maps_max
    size: int = 512  # rendered image side, pixels
    pad: int = 6  # margin around the fitted orbit, pixels
    iterations: int = 100_000  # chaos-game points per image
    draw: str = "patch"  # patch (3x3 random binary mask per point) | point
    gray: int = 127  # gray level of drawn pixels on black
    fixed_map_sequence: bool = True  # same map-choice sequence for every class (the release)
    fill_threshold: float = 0.05  # minimum fraction of nonzero pixels of a valid image
    max_redraws: int = 100  # bounded rejection sampling for too-empty images
    instances: int = 1  # images per class (the release renders one)
    seed: int = 0
    # source=real: one real image; each class is one fixed random warp of strength delta
    image: Optional[str] = None  # a path, s3:// or http(s):// URL, or skimage:NAME (e.g. skimage:astronaut)
    representation: str = "gray"  # rgb | gray | canny
    warp: str = "affine"  # affine | elastic | polynomial

    def __post_init__(self) -> None:
        _choice("data.source", self.source, DATA_SOURCES)
        _at_least("data.n_maps", self.n_maps, 1)
        _at_least("data.n_maps_max", self.n_maps_max, 2)
        _open_interval("data.sigma", self.sigma, 0.0, 3.0 * self.n_maps)
        if not (0.0 <= self.sigma_jitter < self.sigma):
            raise ConfigError(
                f"data.sigma_jitter={self.sigma_jitter!r} is out of range; allowed: 0 <= jitter < data.sigma ({self.sigma:g})"
            )
        if self.sigma + self.sigma_jitter >= 3.0 * self.n_maps:
            raise ConfigError(
                f"data.sigma + data.sigma_jitter = {self.sigma + self.sigma_jitter:g} reaches 3N = {3 * self.n_maps}; "
                f"allowed: sigma + jitter < 3 * data.n_maps"
            )
        _open_interval("data.delta", self.delta, 0.0, 1.0)
        _at_least("data.L", self.L, 2)
        _at_least("data.size", self.size, 8)
        _at_least("data.pad", self.pad, 0)
        if self.draw == "patch" and self.pad < 1:
            raise ConfigError(f"data.pad={self.pad} is out of range; allowed with data.draw=patch: >= 1")
        if self.size - 2 * self.pad < 2:
            raise ConfigError(
                f"data.pad={self.pad} leaves no room in data.size={self.size}; allowed: pad <= {(self.size - 2) // 2}"
            )
        _at_least("data.iterations", self.iterations, 1)
        _choice("data.draw", self.draw, DRAW_MODES)
        if not (1 <= self.gray <= 255):
            raise ConfigError(f"data.gray={self.gray!r} is out of range; allowed: 1..255")
        if not (0.0 <= self.fill_threshold < 1.0):
            raise ConfigError(f"data.fill_threshold={self.fill_threshold!r} is out of range; allowed: [0, 1)")
        _at_least("data.max_redraws", self.max_redraws, 1)
        _at_least("data.instances", self.instances, 1)
        if self.source == "ofdb" and self.instances != 1:
            raise ConfigError(
                f"data.instances={self.instances} with data.source=ofdb; OFDB has one instance per category "
                f"(use data.source=fractaldb for more)"
            )
        _at_least("data.seed", self.seed, 0)
        _choice("data.representation", self.representation, REPRESENTATIONS)
        _choice("data.warp", self.warp, WARPS)
        if self.source == "real":
            if not self.image:
                raise ConfigError(
                    "data.source=real needs data.image: a path, an s3:// or http(s):// URL, or skimage:NAME (e.g. skimage:astronaut)"
                )
            if self.instances != 1:
                raise ConfigError(f"data.instances={self.instances} with data.source=real; allowed: 1 (each class is one fixed warp)")


@dataclass
class ModelConfig:
    """Which timm model to pre-train and score."""

    name: str = "vit_tiny_patch16_224"
    img_size: int = 224
    patch_size: int = 16
    drop_path: float = 0.1

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("model.name is empty; give a timm model name, e.g. vit_tiny_patch16_224")
        _at_least("model.img_size", self.img_size, 8)
        _at_least("model.patch_size", self.patch_size, 1)
        if not (0.0 <= self.drop_path < 1.0):
            raise ConfigError(f"model.drop_path={self.drop_path!r} is out of range; allowed: [0, 1)")


@dataclass
class PretrainConfig:
    """LPCE pre-training budget."""

    steps: int = 312_500
    batch_size: int = 256

    def __post_init__(self) -> None:
        _at_least("pretrain.steps", self.steps, 0)
        _at_least("pretrain.batch_size", self.batch_size, 1)


@dataclass
class ScoreConfig:
    """Downstream scoring of a pre-trained checkpoint."""

    dataset: str = "cifar10"
    data_root: Optional[str] = None
    mode: str = "finetune"
    probe_blocks: int = 1
    epochs: int = 1000
    checkpoint: Optional[str] = None  # a checkpoint URI, or none for training from scratch

    def __post_init__(self) -> None:
        _choice("score.dataset", self.dataset, SCORE_DATASETS)
        _choice("score.mode", self.mode, SCORE_MODES)
        _at_least("score.probe_blocks", self.probe_blocks, 1)
        _at_least("score.epochs", self.epochs, 0)
        if isinstance(self.checkpoint, str) and self.checkpoint.lower() in ("none", "null", "scratch", ""):
            self.checkpoint = None


@dataclass
class Config:
    """The whole run: data -> model -> pretrain -> score, plus where results go."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    storage: str = "runs"  # local directory or s3:// URI
    name: str = "default"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.storage:
            raise ConfigError("storage is empty; give a local directory or an s3:// URI")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name={self.name!r} is not allowed; use a non-empty name without '/'")
        _at_least("seed", self.seed, 0)
