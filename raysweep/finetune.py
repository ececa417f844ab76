"""``python -m raysweep.finetune``: the scoring command's earlier name, kept as an alias of
``python -m raysweep.score`` (see there)."""

from __future__ import annotations

import sys

from raysweep.score.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
