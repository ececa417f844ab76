"""``python -m raysweep.pretrain key=value ...``: one LPCE pre-training on the embedded default
(a local Ray, local storage, the dataset rendered or reused on the fly). A model already in the
store is reused without starting Ray. Prints the pre-trained model's URI (``{storage}/pretrain/{key}``)
as its last line. Keys: the schema's ``data.*``, ``model.*``, ``pretrain.*``, ``storage``, ``seed``."""

from __future__ import annotations

import sys

from raysweep.cli import config_command


def _pretrain(cfg) -> str:
    from raysweep.launch import pretrain

    return pretrain(cfg, log=lambda m: print(m, file=sys.stderr))


main = config_command(__doc__, _pretrain)

if __name__ == "__main__":
    sys.exit(main())
