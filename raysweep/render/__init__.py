"""Rendering stage: from a validated data config to class images (the sources), the dataset spec
that names what those images depend on, and previews."""

from raysweep.render.sources import SOURCES, create_source, dataset_label, source

_PREVIEW = ("contact_sheet", "preview_tiles", "save_png")
__all__ = ["SOURCES", "contact_sheet", "create_source", "dataset_label", "preview_tiles", "save_png", "source"]


def __getattr__(name: str):
    # previews need PIL (0.1 s to import); render actors, which import this package, never do
    if name in _PREVIEW:
        from raysweep.render import preview

        return getattr(preview, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
