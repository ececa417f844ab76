"""``python -m raysweep.bench {render,data,train,trial,memory,gpu} [--json] [--seconds S] [--repeats R] [--tiny]``"""

from __future__ import annotations

import argparse
import json
import sys

BENCHMARKS = ("render", "data", "train", "trial", "memory", "gpu")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated sizes >= 2, e.g. 64,224")
    return sizes


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every raysweep command, instead of usage + error
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m raysweep.bench", description="raysweep benchmarks")
    parser.add_argument("benchmark", choices=BENCHMARKS)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per timed repeat")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (the median is reported)")
    parser.add_argument("--images", type=int, default=20_000, help="data: images streamed per run (default 20000)")
    parser.add_argument("--px", type=_sizes, default=(64, 224), help="data: image sizes, comma-separated (default 64,224)")
    parser.add_argument("--steps", type=int, default=80, help="train: optimizer steps per run")
    parser.add_argument("--tiny", action="store_true", help="gpu: the same code paths in seconds on a CPU (a tiny model, few steps)")
    args = parser.parse_args(argv)
    if args.benchmark == "render":
        from raysweep.bench import render

        result = render.run(seconds=args.seconds, repeats=args.repeats or 5)
        print(json.dumps(result) if args.json else render.format_table(result))
    elif args.benchmark == "data":
        from raysweep.bench import data

        result = data.run(sizes=args.px, images=args.images, repeats=args.repeats or 3)
        print(json.dumps(result) if args.json else data.format_table(result))
    elif args.benchmark == "train":
        from raysweep.bench import train

        result = train.run(steps=args.steps, repeats=args.repeats or 3)
        print(json.dumps(result) if args.json else train.format_table(result))
    elif args.benchmark == "trial":
        from raysweep.bench import trial

        result = trial.run(trials=args.repeats or 4)
        print(json.dumps(result) if args.json else trial.format_table(result))
    elif args.benchmark == "memory":
        from raysweep.bench import memory

        result = memory.run(repeats=args.repeats or 1)
        print(json.dumps(result) if args.json else memory.format_table(result))
    elif args.benchmark == "gpu":
        from raysweep.bench import gpu

        result = gpu.run(tiny=args.tiny)
        print(json.dumps(result) if args.json else gpu.format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
