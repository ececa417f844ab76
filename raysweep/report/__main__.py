"""``python -m raysweep.report RUN_DIR [baseline.KEY=VALUE]``: rebuild a sweep's results from
what its run directory stores (local or ``s3://``; each trial's ``params.json`` and ``result.json``).

* ``report.html``, always: one self-contained page (images embedded, opens offline) showing the
  sweep as it stands, finished or in progress (run it to refresh the page during a sweep).
* Once the sweep has ended (it wrote ``results.csv``): ``results.csv``, ``results.md``,
  ``best.yaml`` and ``plots/`` too, with this version's statistics (95 % intervals over seeds,
  differences to the baseline paired by seed, trials at chance flagged), and the comparison the
  sweep prints at its end (on stderr).

``baseline.KEY=VALUE`` compares every configuration with that setting instead of the experiment's
baseline, e.g. ``baseline.variant=scratch`` or ``baseline.data.delta=0.1`` (a variant's label, or
one value of a swept grid); ``experiment.json`` is not changed. The page's URI is the last line
printed."""

from __future__ import annotations

import sys

from raysweep.cli import main_guard
from raysweep.config import ConfigError

USAGE = "python -m raysweep.report RUN_DIR [baseline.KEY=VALUE]"


def parse_baseline(args: list[str]) -> tuple[str, object] | None:
    """``baseline.KEY=VALUE`` (at most one) as (KEY, VALUE); the value read as YAML (a number stays
    a number), the text itself when YAML makes no scalar of it (a label such as ``delta=0.1 L=32``)."""
    if not args:
        return None
    if len(args) > 1 or not args[0].startswith("baseline.") or "=" not in args[0]:
        raise ConfigError(f"unexpected argument(s) {' '.join(args)!r}; usage: {USAGE}")
    key, text = args[0][len("baseline."):].split("=", 1)
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    return key, value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else text


@main_guard
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    baseline = parse_baseline(argv[1:])
    from raysweep.report.page import write_report
    from raysweep.report.records import load_run
    from raysweep.report.results import comparison_lines, trial_rows, write_outputs
    from raysweep.storage import exists, join

    run = load_run(argv[0])
    if baseline is not None:
        run.experiment = run.experiment.with_baseline(*baseline)
    if exists(join(run.run_dir, "results.csv")):  # the sweep has ended: its results files are rebuilt too
        rows = trial_rows(run.trials, run.experiment)
        for uri in write_outputs(run.run_dir, rows, run.experiment):
            print(f"wrote {uri}", file=sys.stderr)
        for line in comparison_lines(rows, run.experiment):
            print(line, file=sys.stderr)
    print(write_report(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
