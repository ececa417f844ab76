"""Rendering stage: from a validated data config to class images (sources, previews)."""

from raysweep.render.preview import contact_sheet, preview_tiles, save_png
from raysweep.render.sources import create_source, register_source, source_names

__all__ = ["contact_sheet", "create_source", "preview_tiles", "register_source", "save_png", "source_names"]
