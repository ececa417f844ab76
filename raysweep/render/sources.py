"""The registry of class-image sources: ``create_source(cfg.data)`` for each ``data.source``."""

from __future__ import annotations

from typing import Callable

from raysweep.config import ConfigError, DataConfig
from raysweep.fractal import FractalClasses, FractalDBClasses, OFDBClasses, OnePFracClasses

_SOURCES: dict[str, Callable[[DataConfig], FractalClasses]] = {
    "1p-frac": OnePFracClasses,
    "fractaldb": FractalDBClasses,
    "ofdb": OFDBClasses,
}


def register_source(name: str, factory: Callable[[DataConfig], FractalClasses]) -> None:
    _SOURCES[name] = factory


def source_names() -> list[str]:
    return sorted(_SOURCES)


def create_source(cfg: DataConfig) -> FractalClasses:
    """The class-image source for ``cfg.source`` (validated config in, renderer out)."""
    try:
        factory = _SOURCES[cfg.source]
    except KeyError:
        raise ConfigError(f"data.source={cfg.source!r} is not available; choose one of: {', '.join(source_names())}") from None
    return factory(cfg)
