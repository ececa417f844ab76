"""``python -m raysweep.score key=value ...``: score a pre-trained model (or scratch) on a downstream
dataset, by fine-tuning or linear probing, on Ray Train. Prints one JSON object with ``top1``
(percent) as its last line. (``python -m raysweep.finetune`` is the same command.)

Keys: ``score.checkpoint`` (a model's URI, e.g. ``{storage}/pretrain/{key}``, or none),
``score.dataset`` (cifar10|cifar100|imagefolder|digits), ``score.data_root``, ``score.mode``
(finetune|linear_probe), ``score.probe_blocks``, ``score.epochs`` and the recipe's ``score.*``;
``model.*`` (must match the checkpoint's architecture; ``model.img_size`` may differ: position
embeddings are interpolated); ``storage``.
"""

from __future__ import annotations

import json
import sys

from raysweep.cli import config_command


def _score(cfg) -> str:
    from raysweep.launch import score

    return json.dumps(score(cfg, log=lambda m: print(m, file=sys.stderr)))


main = config_command(__doc__, _score)

if __name__ == "__main__":
    sys.exit(main())
