"""``python -m raysweep.dataset key=value ...``: render a dataset through Ray Data (or reuse it)
under ``storage`` (a directory or s3:// URI) and print its URI as the last line.

Every ``data.*`` key of the schema can be overridden (``data.source=fractaldb|ofdb|real`` too; for
``real``: ``data.image``, ``data.representation``, ``data.warp``); ``render_resource`` puts the render
actors on the nodes advertising it. Option: ``actors=N`` (most render actors; default: as many as
the cluster's CPUs allow).
"""

from __future__ import annotations

import sys

from raysweep.cli import arguments, main_guard, split_args
from raysweep.config import ConfigError, load_config


@main_guard
def main(argv: list[str] | None = None) -> int:
    if (argv := arguments(argv, __doc__)) is None:
        return 0
    overrides, opts = split_args(argv, {"actors": 0})
    cfg = load_config(overrides)
    if opts["actors"] < 0:
        raise ConfigError(f"actors={opts['actors']} is out of range; allowed: >= 0 (0: as many as CPUs allow)")
    from raysweep.dataset import materialize
    from raysweep.preflight import preflight_render

    preflight_render(cfg)
    uri, _ = materialize(cfg.data, cfg.storage, max_actors=opts["actors"] or None, log=lambda m: print(m, file=sys.stderr),
                         render_resource=cfg.render_resource)
    print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
