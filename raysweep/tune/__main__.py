"""``python -m raysweep.tune EXPERIMENT.yaml [key=value ...]``: run (or resume) a sweep.

Each trial renders or reuses its dataset, pre-trains, and scores downstream; the run directory
(printed as the last line) holds results.csv, results.md, best.yaml, plots/*.png and Tune's logs.
Overrides use Hydra's syntax (``data.L=64``, sweeps ``data.delta=0.01,0.1``); ``budget=paper``
switches to the experiment's paper budget.
"""

from __future__ import annotations

import sys

from raysweep.cli import main_guard
from raysweep.config import ConfigError


@main_guard
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    yaml_path, overrides = (argv[0], argv[1:]) if "=" not in argv[0] else (None, argv)
    if yaml_path is None:
        raise ConfigError("give an experiment file first, e.g. python -m raysweep.tune experiments/quickstart.yaml")
    from raysweep.experiment import load_experiment

    experiment = load_experiment(yaml_path, overrides)
    from raysweep.tune.run import SweepFailed, run_sweep

    try:
        print(run_sweep(experiment, log=lambda m: print(m, file=sys.stderr)))
    except SweepFailed as e:
        print(f"error: {e}", file=sys.stderr)
        print(e.run_dir)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
