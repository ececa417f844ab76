"""The data sources, one entry each: what renders a source's class images, the data settings its
bytes depend on (its dataset spec), what else they depend on (a real image's pixels), what can be
checked before any cluster work, and how a report names one of its datasets.

``data.source`` (``1p-frac``, ``fractaldb``, ``ofdb``, ``real``) picks the entry; a new source is a
new entry here (and its name in ``raysweep.config.schema.DATA_SOURCES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from raysweep.config import ConfigError, DataConfig
from raysweep.config.schema import DATA_SOURCES
from raysweep.fractal import FractalDBClasses, OFDBClasses, OnePFracClasses
from raysweep.render.real import RealImageClasses, image_digest


class Rendered(Protocol):
    """One image of one class, as every source yields it."""

    label: int
    instance: int
    image: np.ndarray  # (H, W) or (H, W, 3) uint8
    fill: float
    redraws: int

    @property
    def params(self) -> Sequence: ...  # JSON-serialisable parameters of the class


class ClassSource(Protocol):
    """What the dataset stage needs of a source: a class count and the images of each class."""

    cfg: DataConfig

    @property
    def num_classes(self) -> int: ...

    def render_class(self, label: int) -> list[Rendered]: ...

    def anchors(self) -> list[tuple[str, np.ndarray]]: ...  # images a preview shows first (1p-frac: its base)


def _nothing(cfg: DataConfig):
    return None


def _render_base(cfg: DataConfig) -> None:
    OnePFracClasses(cfg).base  # noqa: B018 - renders the base system: a one-line error if none passes the fill threshold


_COMMON = ("source", "L", "size", "seed", "instances", "fill_threshold")
_ENGINE = ("pad", "iterations", "draw", "gray", "fixed_map_sequence", "framing")  # the chaos-game renderer's settings


@dataclass(frozen=True)
class Source:
    name: str
    classes: Callable[[DataConfig], ClassSource]  # renders its class images
    fields: tuple[str, ...]  # the data settings its bytes depend on
    describe: Callable[[DataConfig], str]  # how a report names a dataset of it
    identity: Callable[[DataConfig], str | None] = _nothing  # what else its bytes depend on (fetches, hashes)
    check: Callable[[DataConfig], None] = _nothing  # its pre-flight, before any cluster work


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("1p-frac", OnePFracClasses, _COMMON + ("sigma", "sigma_jitter", "delta", "n_maps") + _ENGINE,
           lambda c: f"1p-frac · L = {c.L} · Δ = {c.delta} · σ = {c.sigma} · seed {c.seed}", check=_render_base),
    Source("fractaldb", FractalDBClasses, _COMMON + ("n_maps_max",) + _ENGINE,
           lambda c: f"FractalDB-{c.L} · {c.instances} instances · seed {c.seed}"),
    Source("ofdb", OFDBClasses, _COMMON + ("n_maps_max",) + _ENGINE,
           lambda c: f"OFDB-{c.L} · seed {c.seed}"),
    Source("real", RealImageClasses, _COMMON + ("delta", "image", "representation", "warp"),
           lambda c: f"real {c.image} · {c.representation} · {c.warp} · L = {c.L} · Δ = {c.delta} · seed {c.seed}",
           identity=lambda c: image_digest(c.image), check=lambda c: image_digest(c.image) and None),
)}
assert set(SOURCES) == set(DATA_SOURCES), "every data.source the schema allows has one entry here"


def source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"data.source={name!r} is not available; choose one of: {', '.join(SOURCES)}") from None


def create_source(cfg: DataConfig) -> ClassSource:
    """The class-image source for ``cfg.source`` (validated config in, renderer out)."""
    return source(cfg.source).classes(cfg)


def dataset_label(cfg: DataConfig) -> str:
    return source(cfg.source).describe(cfg)
