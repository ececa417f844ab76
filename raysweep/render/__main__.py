"""``python -m raysweep.render preview data.sigma=3.5 data.delta=0.1 data.L=16 out=grid.png``

Commands:
  preview   write a contact sheet of the classes (their index on each tile) to ``out``.
            Options: out=PATH (default preview.png), tiles=N (max tiles, default 64),
            tile=PX (tile side, default 128), cols=N (default: square grid).
Every ``data.*`` key of the schema can be overridden (``data.source=fractaldb|ofdb`` too).
"""

from __future__ import annotations

import sys

from raysweep.cli import main_guard, split_args
from raysweep.config import ConfigError, load_config

COMMANDS = ("preview",)


@main_guard
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "preview":
        return preview(rest)
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


if __name__ == "__main__":
    sys.exit(main())
