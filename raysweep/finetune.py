"""``python -m raysweep.finetune key=value ...``: score a pre-training checkpoint (or scratch) on a
downstream dataset, by fine-tuning or linear probing, on Ray Train. Prints one JSON object with
``top1`` (percent) as its last line.

Keys: ``score.checkpoint`` (URI or none), ``score.dataset`` (cifar10|cifar100|imagefolder|digits),
``score.data_root``, ``score.mode`` (finetune|linear_probe), ``score.probe_blocks``,
``score.epochs`` and the recipe's ``score.*``; ``model.*`` (must match the checkpoint's
architecture; ``model.img_size`` may differ: position embeddings are interpolated); ``storage``.
"""

from __future__ import annotations

import json
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
    from raysweep.score.run import run_score

    print(json.dumps(run_score(cfg, log=lambda m: print(m, file=sys.stderr))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
