"""Rendering stage: from a validated data config to class images (sources, previews)."""

from raysweep.render.sources import create_source, register_source, source_names

_PREVIEW = ("contact_sheet", "preview_tiles", "save_png")
__all__ = ["contact_sheet", "create_source", "preview_tiles", "register_source", "save_png", "source_names"]


def __getattr__(name: str):
    # previews need PIL (0.1 s to import); render actors, which import this package, never do
    if name in _PREVIEW:
        from raysweep.render import preview

        return getattr(preview, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
