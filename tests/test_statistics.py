"""How a sweep's numbers are read (no Ray): 95 % t intervals over seeds, differences to a baseline
paired by seed, the baseline each experiment gets, trials at chance flagged, and swept values kept
at the precision they were given. The rows come from ``trial_rows`` over the records the report
reads (``TrialRecord``), for experiments loaded from real YAML files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from scipy import stats as scipy_stats

from raysweep.config import ConfigError
from raysweep.experiment import Experiment, load_experiment
from raysweep.report.__main__ import main as report_main
from raysweep.report.page import render_page
from raysweep.report.records import RunRecord, TrialRecord
from raysweep.report.results import comparison_lines, difference_table, downstream_classes, markdown, plot_series, summary_table, trial_rows
from raysweep.report.stats import (Baseline, baseline_of, downstream_at_chance, estimate, fmt_estimate, paired_differences,
                                   pretrain_at_chance)
from test_tune import experiment


def load(tmp_path: Path, extra: dict, overrides: tuple[str, ...] = ()) -> Experiment:
    return load_experiment(str(experiment(tmp_path, "stats", extra)), list(overrides))


def records(exp: Experiment, trials: list[tuple[dict, dict]]) -> list[TrialRecord]:
    """Finished trials as Tune stores them: (parameters, final metrics)."""
    return [TrialRecord(path=f"/runs/sweeps/stats/run_trial_{i:05d}_{i}_x", config=params,
                        history=[{"finished": True, "time_total_s": 5.0, **metrics}])
            for i, (params, metrics) in enumerate(trials)]


def keys_of(exp: Experiment) -> list[str]:
    return [k for k in exp.swept_keys() if k != "seed"]


# ------------------------------------------------------------------------------------------ intervals


def test_the_interval_is_students_t_with_n_minus_1_degrees_of_freedom():
    values = [39.1, 41.0, 38.9, 40.6]
    est = estimate(values)
    sem = scipy_stats.sem(values)
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=sum(values) / 4, scale=sem)
    assert est.n == 4 and est.mean == pytest.approx(39.9)
    assert (est.low, est.high) == (pytest.approx(low), pytest.approx(high))
    # by hand: two values 10 and 12 -> mean 11, s = sqrt(2), t(0.975, 1) = 12.7062: 11 ± 12.7062
    two = estimate([10.0, 12.0])
    assert two.half == pytest.approx(12.7062, abs=1e-4) and fmt_estimate(two) == "11.0 [-1.7, 23.7]"
    assert not two.significant and estimate([5.0, 5.2, 5.1]).significant


def test_one_seed_gives_the_mean_alone():
    est = estimate([42.25, None, math.nan])
    assert (est.mean, est.half, est.n) == (42.25, None, 1)
    assert fmt_estimate(est) == "42.2" and fmt_estimate(est, 2, signed=True) == "+42.25"
    assert not est.significant, "no interval, so nothing is significant"
    assert fmt_estimate(estimate([])) == "—"


# ---------------------------------------------------------------------------------- paired differences


def seeded_rows(tmp_path: Path) -> tuple[Experiment, list[dict]]:
    """scratch / real-gap / no-gap, 3 seeds each (and a 4th seed only the real gap finished). Seeds
    differ by a lot (0, 20, 40 points) and every variant shares that: only pairing by seed sees
    that 'gap' is always 5 points above scratch."""
    exp = load(tmp_path, {"variants": [{"label": "scratch", "pretrain.steps": 0}, {"label": "gap"}, {"label": "no gap"}],
                          "sweep.seeds": [0, 1, 2, 3]})
    offset = {0: 0.0, 1: 20.0, 2: 40.0, 3: 60.0}
    noise = {"scratch": {0: 0.0, 1: 0.0, 2: 0.0}, "gap": {0: 5.1, 1: 4.9, 2: 5.0, 3: 5.0}, "no gap": {0: 3.0, 1: -3.0, 2: 0.5}}
    index = {"scratch": 0, "gap": 1, "no gap": 2}
    trials = [({"variant": index[v], "seed": s}, {"top1": 20.0 + offset[s] + d, "probe3_top1": 30.0 + d})
              for v, by_seed in noise.items() for s, d in by_seed.items()]
    return exp, trial_rows(records(exp, trials), exp)


def test_paired_differences_separate_a_real_gap_from_noise(tmp_path):
    exp, rows = seeded_rows(tmp_path)
    baseline = baseline_of(exp)
    assert baseline == Baseline("variant", "scratch", "the scratch variant (pretrain.steps: 0)")
    diffs = {d.config["variant"]: d for d in paired_differences(rows, ["variant"], baseline, ["top1", "probe3_top1"])}
    assert set(diffs) == {"gap", "no gap"}, "the baseline is not compared with itself"
    gap, none = diffs["gap"], diffs["no gap"]
    assert gap.seeds == [0, 1, 2], "seed 3 has no scratch trial to pair with"
    expected = estimate([5.1, 4.9, 5.0])
    assert gap.estimates["top1"].mean == pytest.approx(5.0) and gap.estimates["top1"].half == pytest.approx(expected.half)
    assert gap.estimates["top1"].significant and gap.estimates["probe3_top1"].significant
    assert none.estimates["top1"].mean == pytest.approx(0.5 / 3) and not none.estimates["top1"].significant
    # unpaired, the seeds' spread (0..40 points) hides the 5-point gap entirely
    unpaired = [estimate(r["top1"] for r in rows if r["variant"] == v) for v in ("scratch", "gap")]
    assert unpaired[1].low < unpaired[0].high
    head, body, notes = difference_table(rows, ["variant"], baseline)
    assert head[-1] == "top-1 difference significant at 95 %"
    assert body[0][:2] == ["gap", "0, 1, 2"] and body[0][-1] == "yes"
    assert body[0][2].startswith("+5.0 [") and body[0][2].endswith("✓")
    assert body[1][0] == "no gap" and "✓" not in body[1][2] and body[1][-1] == "no"
    assert notes[0].startswith("Baseline: scratch, the scratch variant")


def test_differences_pair_within_the_other_swept_keys(tmp_path):
    """scratch vs 1p-frac at each probe depth: 1p-frac at depth 2 is compared with scratch at depth 2."""
    exp = load(tmp_path, {"variants": [{"label": "scratch", "pretrain.steps": 0}, {"label": "1p-frac"}],
                          "score.probe_blocks": {"grid": [1, 2]}, "score.mode": "linear_probe", "sweep.seeds": [0, 1]})
    top1 = {(0, 1): 30.0, (0, 2): 50.0, (1, 1): 32.0, (1, 2): 51.0}
    trials = [({"variant": v, "score.probe_blocks": k, "seed": s}, {"top1": top1[v, k] + s}) for (v, k) in top1 for s in (0, 1)]
    rows = trial_rows(records(exp, trials), exp)
    diffs = {d.config["score.probe_blocks"]: d.estimates["top1"].mean for d in paired_differences(rows, keys_of(exp),
                                                                                                  baseline_of(exp), ["top1"])}
    assert diffs == {1: pytest.approx(2.0), 2: pytest.approx(1.0)}


def test_one_seed_differences_have_no_interval(tmp_path):
    exp = load(tmp_path, {"study": "delta", "data.delta": {"grid": [0.01, 0.1]}})
    rows = trial_rows(records(exp, [({"data.delta": 0.01, "seed": 0}, {"top1": 20.0}),
                                    ({"data.delta": 0.1, "seed": 0}, {"top1": 30.0})]), exp)
    head, body, notes = difference_table(rows, ["data.delta"], baseline_of(exp))
    assert body == [["0.01", "0", "-10.0", "no interval (one seed)"]]
    assert "cannot be called significant" in notes[-1]
    _, _, summary_notes = summary_table(rows, ["data.delta"])
    assert summary_notes[0].startswith("One seed: every cell is a mean alone")
    md = markdown(rows, ["data.delta"], "t", exp)
    assert "## Difference to data.delta = 0.1 (paired by seed)" in md and "| 0.01 | 0 | -10.0 | no interval (one seed) |" in md


# ---------------------------------------------------------------------------------------------- baseline


@pytest.mark.parametrize("extra,expected", [
    ({"study": "delta", "data.delta": {"grid": [0.01, 0.05, 0.1, 0.2]}}, ("data.delta", 0.1)),
    ({"study": "sigma", "data.sigma": {"grid": [2.0, 3.0, 5.0]}}, ("data.sigma", 3.0)),  # nearest the release's 3.5
    ({"study": "L", "data.L": {"grid": [4, 16, 64]}}, ("data.L", 64)),  # nearest 1,000: the largest
    ({"study": "L", "data.L": {"grid": [16, 100, 1000, 10000]}}, ("data.L", 1000)),
    ({"study": "delta", "data.delta": {"grid": [0.01, 0.1]},
      "variants": [{"label": "1p"}, {"label": "none", "pretrain.steps": 0}]},
     ("variant", "none")),  # a scratch variant comes first
    ({"study": "delta", "data.delta": {"grid": [0.01, 0.1]}, "baseline": {"data.delta": 0.01}}, ("data.delta", 0.01)),
    ({"study": "real_image", "data.source": "real", "data.image": "skimage:camera", "data.warp": {"grid": ["affine", "elastic"]}},
     None),
    ({"data.delta": {"grid": [0.01, 0.1]}}, None),  # no study, no scratch variant, none named
    ({"study": "delta", "data.delta": {"uniform": [0.01, 0.2]}}, None),  # sampled: no grid value to compare with
])
def test_the_baseline_each_experiment_gets(tmp_path, extra, expected):
    baseline = baseline_of(load(tmp_path, extra))
    assert ((baseline.key, baseline.value) if baseline else None) == expected
    if expected and extra.get("study") == "sigma":
        assert baseline.why == "the paper's reference setting (Table 6: data.sigma = 3.5; the grid's value nearest 3.5)"


def test_a_named_baseline_from_the_command_line_is_recorded(tmp_path):
    exp = load(tmp_path, {"variants": [{"label": "a"}, {"label": "b"}]}, ("baseline.variant=b",))
    assert exp.baseline == {"variant": "b"} and baseline_of(exp).why == "named by the experiment (baseline.variant)"
    again = Experiment.from_record(exp.record())
    assert again.baseline == {"variant": "b"} and again.fingerprint == exp.fingerprint
    assert "baseline" not in load(tmp_path, {"variants": [{"label": "a"}, {"label": "b"}]}).record()["base"]


@pytest.mark.parametrize("extra,overrides,message", [
    ({"data.delta": {"grid": [0.01, 0.1]}}, ("baseline.data.delta=0.3",),
     "baseline.data.delta=0.3 is not a value the sweep runs; choose one of: 0.01, 0.1"),
    ({"data.delta": {"grid": [0.01, 0.1]}}, ("baseline.data.sigma=3.5",),
     "baseline.data.sigma=3.5: data.sigma is not swept by a grid or variants; choose one of: data.delta"),
    ({"variants": [{"label": "a"}, {"label": "b"}]}, ("baseline.variant=c",),
     "baseline.variant='c' is not a value the sweep runs; choose one of: a, b"),
    ({"data.delta": {"grid": [0.01, 0.1]}, "variants": [{"label": "a"}]}, ("baseline.variant=a", "baseline.data.delta=0.1"),
     "baseline names 2 settings (variant, data.delta); name one, e.g. baseline.variant=scratch"),
    ({"data.delta": {"grid": [0.01, 0.1]}}, ("baseline=0.1",),
     "baseline=0.1 must name one swept setting, e.g. baseline.variant=scratch or baseline.data.delta=0.1"),
])
def test_a_bad_baseline_is_a_one_line_error(tmp_path, extra, overrides, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, extra, overrides)
    assert str(err.value) == message


# ------------------------------------------------------------------------------------------------ chance


def test_the_chance_rules():
    # the quickstart's reading: loss 2.776 = ln 16 and 5.9 % train top-1 (chance 6.25 %)
    assert pretrain_at_chance(5.9, 2.776, 16)
    assert pretrain_at_chance(9.2, 2.5, 16) and not pretrain_at_chance(9.3, 2.5, 16)  # within 3 points of 6.25
    assert not pretrain_at_chance(26.8, 2.9, 32), "repro_small's Delta = 0.01: weak, not at chance"
    assert pretrain_at_chance(None, 0.97 * math.log(16), 16), "by the loss where no top-1 was reported"
    assert not pretrain_at_chance(None, 2.0, 16)
    assert not pretrain_at_chance(None, None, 16), "scratch: nothing to judge"
    assert downstream_at_chance(9.3, 10) and downstream_at_chance(12.0, 10) and not downstream_at_chance(12.1, 10)
    assert downstream_at_chance(2.9, 100) and not downstream_at_chance(3.1, 100) and not downstream_at_chance(None, 10)


def test_trials_at_chance_are_flagged_with_their_own_L_and_class_count(tmp_path):
    """The same 20 % pre-training top-1 is chance for L = 4 (25 %) and far above it for L = 64."""
    exp = load(tmp_path, {"data.L": {"grid": [4, 64]}, "sweep.seeds": [0, 1]})
    trials = [({"data.L": 4, "seed": 0}, {"top1": 11.0, "pretrain_top1": 20.0, "pretrain_loss": 1.38}),
              ({"data.L": 4, "seed": 1}, {"top1": 40.0, "pretrain_top1": 60.0, "pretrain_loss": 0.9}),
              ({"data.L": 64, "seed": 0}, {"top1": 45.0, "pretrain_top1": 20.0, "pretrain_loss": 3.0}),
              ({"data.L": 64, "seed": 1}, {"top1": 44.0, "pretrain_top1": 22.0, "pretrain_loss": 3.1})]
    rows = trial_rows(records(exp, trials), exp)
    assert [r["at_chance"] for r in rows] == ["pretrain+downstream", "", "", ""]
    assert list(rows[0])[:6] == ["trial", "data.L", "seed", "status", "at_chance", "top1"], "results.csv's column"
    md = markdown(rows, ["data.L"], "t", exp)
    # (11, 40) and (20, 60): mean ± 12.706 · s / √2
    assert "| 4 | 25.5 [-158.7, 209.7] ‡ |" in md and "| 40.0 [-214.1, 294.1] † |" in md
    assert ("† pre-training stayed at chance: its final train top-1 within 3 points of 100/L (where it reported none: "
            "loss ≥ 97 % of ln L): data.L=4 (seed 0).") in md
    assert "‡ the downstream fine-tune ended at chance: top-1 within 2 points of 100/classes: data.L=4 (seed 0)." in md


def test_an_image_folders_class_count_is_its_train_folders(tmp_path):
    for name in ("cat", "dog", "eel", ".cache"):
        (tmp_path / "train" / name).mkdir(parents=True)
    (tmp_path / "train" / "README.txt").write_text("not a class")
    assert downstream_classes("imagefolder", str(tmp_path)) == 3
    assert downstream_classes("imagefolder", str(tmp_path / "gone")) is None
    assert [downstream_classes(name, None) for name in ("digits", "cifar10", "cifar100")] == [10, 10, 100]


# --------------------------------------------------------------------------------- precision and plots


def test_swept_values_keep_their_precision(tmp_path):
    exp = load(tmp_path, {"data.delta": {"grid": [0.001, 0.01, 0.125]}})
    rows = trial_rows(records(exp, [({"data.delta": d, "seed": 0}, {"top1": 30.0 + i, "pretrain_loss": 1.23456})
                                    for i, d in enumerate((0.001, 0.01, 0.125))]), exp)
    md = markdown(rows, ["data.delta"], "t", exp)
    assert [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| 0.")] == ["| 0.125", "| 0.01", "| 0.001"]
    page = render_page(RunRecord(run_dir=str(tmp_path), experiment=exp, trials=records(exp, [
        ({"data.delta": 0.001, "seed": 0}, {"top1": 30.0, "pretrain_loss": 1.23456}),
        ({"data.delta": 0.01, "seed": 0}, {"top1": 31.0, "pretrain_loss": 1.23456})])))
    trials = page[page.index("<section id='trials'>"):page.index("</section>", page.index("<section id='trials'>"))]
    assert "data-sort='0.001'>0.001</td>" in trials and "data-sort='0.01'>0.01</td>" in trials, "not 0.0"
    assert ">1.235</td>" in trials and ">30.0</td>" in trials, "metrics keep their digits"


def test_plot_error_bars_are_the_95_intervals_one_line_per_other_setting(tmp_path):
    exp, rows = seeded_rows(tmp_path)
    values, numeric, series, title = plot_series(rows, "variant", ["variant"])
    assert values == ["gap", "no gap", "scratch"] and not numeric and len(series) == 1
    gap = estimate(r["top1"] for r in rows if r["variant"] == "gap")
    assert series[0].halves[0] == pytest.approx(gap.half) and series[0].means[0] == pytest.approx(gap.mean)
    assert title == "top-1 vs variant: mean ± 95 % CI over seeds (Student's t, n − 1 df)"
    exp = load(tmp_path, {"variants": [{"label": "scratch", "pretrain.steps": 0}, {"label": "1p"}],
                          "data.delta": {"grid": [0.01, 0.1]}})
    rows = trial_rows(records(exp, [({"variant": v, "data.delta": d, "seed": 0}, {"top1": 10.0 * v + d})
                                    for v in (0, 1) for d in (0.01, 0.1)]), exp)
    values, numeric, series, title = plot_series(rows, "data.delta", keys_of(exp))
    assert numeric and [s.label for s in series] == ["1p", "scratch"] and all(h is None for s in series for h in s.halves)
    assert title == "top-1 vs data.delta: one seed per point: means alone, no interval"


# ------------------------------------------------------------------------- what a sweep prints at its end


def test_the_comparison_printed_at_the_end_says_which_gaps_are_real(tmp_path):
    exp, rows = seeded_rows(tmp_path)
    lines = comparison_lines(rows, exp)
    assert lines[0] == "downstream top-1 (%) on digits, fine-tune: mean [95 % CI] over the seeds each finished (n)"
    assert lines[1].startswith("  gap      " + fmt_estimate(estimate(r["top1"] for r in rows if r["variant"] == "gap")))
    assert lines[1].endswith("(n = 4)") and lines[3].startswith("  scratch") and lines[3].endswith("(n = 3)")
    gap = estimate([5.1, 4.9, 5.0])
    assert lines[-2] == (f"gap minus scratch, paired by seed (0, 1, 2): {fmt_estimate(gap, signed=True)} points of top-1: "
                         "significant at 95 %")
    assert lines[-1].startswith("no gap minus scratch, paired by seed (0, 1, 2): +0.2 [") and lines[-1].endswith(
        "NOT significant at 95 % (the interval includes 0: no difference shown at this budget)")


def test_the_comparison_with_one_seed_gives_no_verdict_and_shows_chance(tmp_path):
    exp = load(tmp_path, {"data.delta": {"grid": [0.01, 0.1]}})
    rows = trial_rows(records(exp, [({"data.delta": 0.01, "seed": 0}, {"top1": 20.0, "pretrain_top1": 7.0, "pretrain_loss": 2.7}),
                                    ({"data.delta": 0.1, "seed": 0}, {"top1": 30.0, "pretrain_top1": 50.0})]), exp)
    lines = comparison_lines(rows, exp)
    assert lines[0].endswith("over 1 seed (one seed gives no interval)")
    L = exp.cfg.data.L
    assert lines[1] == f"  data.delta=0.1   30.0   pre-training train top-1 50.0 (chance {100 / L:.1f})"
    assert lines[2] == f"  data.delta=0.01  20.0   pre-training train top-1 7.0 (chance {100 / L:.1f}) †"
    assert lines[3].startswith("  † pre-training stayed at chance")
    assert lines[-1].startswith("no baseline to compare with"), "no study, no scratch variant, none named"
    named = comparison_lines(rows, exp.with_baseline("data.delta", 0.1))
    assert named[-1] == ("data.delta=0.01 minus data.delta = 0.1, paired by seed (0): -10.0 points of top-1: "
                         "one paired seed: no interval, so no verdict (repeat over seeds)")


# ------------------------------------------------------------- rebuilding a run directory's results


def write_run(tmp_path: Path, exp: Experiment, trials: list[tuple[dict, dict]], finished: bool) -> Path:
    """A run directory as a sweep leaves it: experiment.json, one directory per trial (params.json,
    result.json) and, once it has ended, results.csv (here an old one, to be rebuilt)."""
    run_dir = tmp_path / "runs" / "sweeps" / "stats"
    run_dir.mkdir(parents=True)
    (run_dir / "experiment.json").write_text(json.dumps(exp.record(), default=str))
    for i, (params, metrics) in enumerate(trials):
        trial = run_dir / f"run_trial_abcde_{i:05d}_{i}_x"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps(params))
        (trial / "result.json").write_text(json.dumps({"step": 10, "loss": 2.0}) + "\n"
                                           + json.dumps({"finished": True, "time_total_s": 5.0, **metrics}) + "\n")
    if finished:
        (run_dir / "results.csv").write_text("old\n")
        (run_dir / "results.md").write_text("old: mean ± std\n")
    return run_dir


def seeded_trials() -> list[tuple[dict, dict]]:
    """scratch and a 1p-frac variant 6 points above it at every seed (the seeds 20 points apart)."""
    return [({"variant": v, "seed": s}, {"top1": 50.0 + 20 * s + 6 * v + 0.1 * (s == 1) * v,
                                         **({"pretrain_top1": 80.0, "pretrain_loss": 0.5} if v else {})})
            for v in (0, 1) for s in (0, 1, 2)]


def test_the_report_command_rebuilds_an_ended_sweeps_results(tmp_path, capsys):
    exp = load(tmp_path, {"variants": [{"label": "scratch", "pretrain.steps": 0}, {"label": "1p-frac"}],
                          "sweep.seeds": [0, 1, 2]})
    run_dir = write_run(tmp_path, exp, seeded_trials(), finished=True)
    assert report_main([str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == str(run_dir / "report.html")
    md = (run_dir / "results.md").read_text()
    assert "mean [95 % CI]" in md and "## Difference to scratch (paired by seed)" in md and "±" not in md
    assert "| 1p-frac | 0, 1, 2 | +6.0 [" in md
    csv_head = (run_dir / "results.csv").read_text().splitlines()[0].split(",")
    assert csv_head[:5] == ["trial", "variant", "seed", "status", "at_chance"] and len((run_dir / "results.csv").read_text().splitlines()) == 7
    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert best["swept"] == {"variant": "1p-frac"} and len(best["top1_ci95"]) == 2
    assert (run_dir / "plots" / "top1_vs_variant.png").read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {run_dir / 'results.md'}" in err
    assert err.strip().splitlines()[-1].startswith("1p-frac minus scratch, paired by seed (0, 1, 2): +6.0 [")
    assert err.strip().endswith("significant at 95 %") and "NOT" not in err
    assert "Difference to scratch" in (run_dir / "report.html").read_text()


def test_the_report_command_compares_with_another_baseline_on_request(tmp_path, capsys):
    exp = load(tmp_path, {"variants": [{"label": "scratch", "pretrain.steps": 0}, {"label": "delta=0.1 L=32"}],
                          "sweep.seeds": [0, 1, 2]})
    run_dir = write_run(tmp_path, exp, seeded_trials(), finished=True)
    recorded = (run_dir / "experiment.json").read_text()
    assert report_main([str(run_dir), "baseline.variant=delta=0.1 L=32"]) == 0
    err = capsys.readouterr().err
    assert "scratch minus delta=0.1 L=32, paired by seed (0, 1, 2): -6.0 [" in err
    md = (run_dir / "results.md").read_text()
    assert "## Difference to delta=0.1 L=32 (paired by seed)" in md
    assert "Baseline: delta=0.1 L=32, named by the command line of python -m raysweep.report (baseline.variant)." in md
    assert (run_dir / "experiment.json").read_text() == recorded, "the sweep's own record is left alone"
    assert report_main([str(run_dir), "baseline.variant=nothing"]) == 2
    assert capsys.readouterr().err.strip() == ("error: baseline.variant='nothing' is not a value the sweep runs; "
                                               "choose one of: scratch, delta=0.1 L=32")
    assert report_main([str(run_dir), "data.delta=0.1"]) == 2
    assert capsys.readouterr().err.strip() == ("error: unexpected argument(s) 'data.delta=0.1'; "
                                               "usage: python -m raysweep.report RUN_DIR [baseline.KEY=VALUE]")


def test_the_report_command_leaves_a_running_sweeps_results_to_the_sweep(tmp_path, capsys):
    exp = load(tmp_path, {"variants": [{"label": "scratch", "pretrain.steps": 0}, {"label": "1p-frac"}],
                          "sweep.seeds": [0, 1, 2]})
    run_dir = write_run(tmp_path, exp, seeded_trials()[:2], finished=False)
    assert report_main([str(run_dir)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(run_dir / "report.html") and err == ""
    assert sorted(p.name for p in run_dir.iterdir() if p.is_file()) == ["experiment.json", "report.html"]
