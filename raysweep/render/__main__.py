"""``python -m raysweep.render {preview,dataset} key=value ...``

Commands:
  preview   write a contact sheet of the classes (their index on each tile) to ``out``.
            Options: out=PATH (default preview.png), tiles=N (max tiles, default 64),
            tile=PX (tile side, default 128), cols=N (default: square grid).
  dataset   the same as ``python -m raysweep.dataset``: render the dataset through Ray Data (or
            reuse it) under ``storage`` and print its URI as the last line. Option: actors=N.
Every ``data.*`` key of the schema can be overridden (``data.source=fractaldb|ofdb|real`` too;
for ``real``: ``data.image``, ``data.representation``, ``data.warp``).
"""

from __future__ import annotations

import sys

from raysweep.cli import main_guard, split_args
from raysweep.config import ConfigError, load_config

COMMANDS = ("preview", "dataset")


@main_guard
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "preview":
        return preview(rest)
    if command == "dataset":
        return dataset(rest)
    raise ConfigError(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)}")


def preview(argv: list[str]) -> int:
    overrides, opts = split_args(argv, {"out": "preview.png", "tiles": 64, "tile": 128, "cols": 0})
    cfg = load_config(overrides)
    if opts["tiles"] < 1 or opts["tile"] < 8 or opts["cols"] < 0:
        raise ConfigError(f"tiles={opts['tiles']}, tile={opts['tile']}, cols={opts['cols']}: allowed tiles >= 1, tile >= 8, cols >= 0")
    from raysweep.render import contact_sheet, create_source, preview_tiles, save_png

    source = create_source(cfg.data)
    tiles = preview_tiles(source, max_tiles=opts["tiles"])
    path = save_png(contact_sheet(tiles, tile=opts["tile"], cols=opts["cols"] or None), opts["out"])
    print(path)
    return 0


def dataset(argv: list[str]) -> int:
    """The dataset command's earlier place, kept as an alias of ``python -m raysweep.dataset`` (a
    stage above rendering: imported by name here, when this alias runs)."""
    import importlib

    return importlib.import_module("raysweep.dataset.__main__").main(argv)


if __name__ == "__main__":
    sys.exit(main())
