"""The registry of class-image sources: ``create_source(cfg.data)`` for each ``data.source``."""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from raysweep.config import ConfigError, DataConfig
from raysweep.fractal import FractalDBClasses, OFDBClasses, OnePFracClasses
from raysweep.render.real import RealImageClasses


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


_SOURCES: dict[str, Callable[[DataConfig], ClassSource]] = {
    "1p-frac": OnePFracClasses,
    "fractaldb": FractalDBClasses,
    "ofdb": OFDBClasses,
    "real": RealImageClasses,
}


def register_source(name: str, factory: Callable[[DataConfig], ClassSource]) -> None:
    _SOURCES[name] = factory


def source_names() -> list[str]:
    return sorted(_SOURCES)


def create_source(cfg: DataConfig) -> ClassSource:
    """The class-image source for ``cfg.source`` (validated config in, renderer out)."""
    try:
        factory = _SOURCES[cfg.source]
    except KeyError:
        raise ConfigError(f"data.source={cfg.source!r} is not available; choose one of: {', '.join(source_names())}") from None
    return factory(cfg)
