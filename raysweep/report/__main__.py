"""``python -m raysweep.report RUN_DIR``: write ``RUN_DIR/report.html``, one self-contained page
(images embedded, opens offline) showing the sweep as it stands: finished, in progress, local or
``s3://``. Sweeps write it themselves when they end; run this to refresh it during a sweep. The
page's URI is the last line printed."""

from __future__ import annotations

import sys

from raysweep.cli import main_guard
from raysweep.config import ConfigError


@main_guard
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from raysweep.report.page import write_report

    print(write_report(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
