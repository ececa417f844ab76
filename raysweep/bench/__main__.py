"""``python -m raysweep.bench render [--json] [--seconds S] [--repeats R]``"""

from __future__ import annotations

import argparse
import json
import sys

BENCHMARKS = ("render",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raysweep.bench", description="raysweep benchmarks")
    parser.add_argument("benchmark", choices=BENCHMARKS)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (the median is reported)")
    args = parser.parse_args(argv)
    if args.benchmark == "render":
        from raysweep.bench import render

        result = render.run(seconds=args.seconds, repeats=args.repeats)
        print(json.dumps(result) if args.json else render.format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
