"""``python -m raysweep.pretrain key=value ...``: one LPCE pre-training on the embedded default
(a local Ray, local storage, the dataset rendered or reused on the fly). Prints the final
checkpoint's URI as its last line. Keys: the schema's ``data.*``, ``model.*``, ``pretrain.*``,
``storage``, ``name``, ``seed``."""

from __future__ import annotations

import sys

from raysweep.cli import main_guard
from raysweep.config import load_config


@main_guard
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    cfg = load_config(argv)
    from raysweep.pretrain.run import pretrain

    print(pretrain(cfg, log=lambda m: print(m, file=sys.stderr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
