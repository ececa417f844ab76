"""The fractal engine: sigma-factor IFS sampling, LIEP perturbations, a numba chaos-game renderer,
and the class systems of 1p-frac, FractalDB-C and OFDB-C."""

from raysweep.fractal.classes import (
    ClassImage,
    FractalClasses,
    FractalDBClasses,
    OFDBClasses,
    OnePFracClasses,
    RenderFailure,
    settings_of,
)
from raysweep.fractal.ifs import IFS, map_probabilities, sample_ifs, sample_singular_values, sigma_factor
from raysweep.fractal.liep import perturb, reweight
from raysweep.fractal.raster import Renderer, RenderSettings, fill_rate, render

__all__ = [
    "IFS",
    "ClassImage",
    "FractalClasses",
    "FractalDBClasses",
    "OFDBClasses",
    "OnePFracClasses",
    "RenderFailure",
    "RenderSettings",
    "Renderer",
    "fill_rate",
    "map_probabilities",
    "perturb",
    "render",
    "reweight",
    "sample_ifs",
    "sample_singular_values",
    "settings_of",
    "sigma_factor",
]
