"""raysweep: minimal synthetic pre-training (1p-frac) sweeps on Ray."""

__version__ = "0.1.0"
