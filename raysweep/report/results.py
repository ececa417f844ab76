"""A sweep's results as people read them: ``results.csv`` (one row per trial, a trial at chance
flagged), ``results.md`` (configurations over seeds: the mean and its 95 % confidence interval, and
each configuration's difference to the baseline, paired by seed), ``best.yaml`` (the best
configuration, resolved) and ``plots/top1_vs_<key>.png`` (downstream top-1 against each swept key,
95 % intervals over seeds as error bars). The statistics are :mod:`raysweep.report.stats`'. Every
file is written atomically."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any

from raysweep.config import ConfigError
from raysweep.report.stats import (DOWNSTREAM_CHANCE_POINTS, PRETRAIN_CHANCE_LOSS, PRETRAIN_CHANCE_POINTS, Baseline, Estimate,
                                   baseline_of, downstream_at_chance, estimate, fmt_estimate, paired_differences,
                                   pretrain_at_chance)
from raysweep.storage import atomic_write, filesystem, is_s3, join

COLUMNS = ("top1", "top5", "best_top1", "pretrain_loss", "pretrain_top1", "probe_top1", "trial_seconds")
EXTRA_PROBE = re.compile(r"^probe(\d+)_top1$")  # score.extra_probes: probe{k}_top1
#: the marks of configurations with a trial at chance (results.md and the report, with a footnote)
PRETRAIN_MARK, DOWNSTREAM_MARK = "†", "‡"
#: the class counts of the built-in downstream datasets (an ImageFolder's: its train/ class folders)
DOWNSTREAM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}
INTERVAL = "95 % CI"
INTERVAL_WORDS = "the 95 % confidence interval of the mean over seeds (Student's t, n − 1 degrees of freedom)"


def probe_columns(rows: list[dict]) -> list[str]:
    """The extra-probe columns present in ``rows``, in block order."""
    found = {k for row in rows for k in row if EXTRA_PROBE.match(k)}
    return sorted(found, key=lambda k: int(EXTRA_PROBE.match(k).group(1)))


def trial_finished(metrics: dict) -> bool:
    """Whether a trial's last result is the one it reports at its end (scored), as opposed to a
    trial that a scheduler stopped early. (Runs written before the ``finished`` key carried
    Tune's reserved ``done`` there instead.)"""
    return bool(metrics.get("finished") or (metrics.get("done") and "trial_seconds" in metrics))


def trial_rows(results, experiment) -> list[dict[str, Any]]:
    """One dict per trial: swept values, status, whether it ended at chance (``at_chance``) and metrics."""
    rows = []
    classes: dict[tuple, int | None] = {}
    for r in results:
        params = r.config or {}
        row: dict[str, Any] = {"trial": getattr(r, "path", "").rsplit("/", 1)[-1]}
        for key in experiment.space:
            row[key] = params.get(key)
        if experiment.variants:
            row["variant"] = experiment.variant_name(int(params.get("variant", 0)))
        seed = experiment.with_seed(params).get("seed")
        row["seed"] = seed if seed is not None else experiment.cfg.sweep.seeds[0]
        metrics = r.metrics or {}
        row["status"] = "error" if r.error else ("done" if trial_finished(metrics) else "stopped")
        row["at_chance"] = ""
        for column in [*COLUMNS, *sorted(k for k in metrics if EXTRA_PROBE.match(k))]:
            value = metrics.get(column)
            row[column] = float(value) if isinstance(value, (int, float)) else None
        row["wall_seconds"] = metrics.get("time_total_s")
        row["model_uri"] = metrics.get("model_uri")  # the pre-trained model it scored (None: scratch)
        row["at_chance"] = _at_chance(row, experiment, params, classes)
        rows.append(row)
    extra = probe_columns(rows)
    for row in rows:  # every row has every column (CSV)
        for column in extra:
            row.setdefault(column, None)
    return rows


def _at_chance(row: dict, experiment, params: dict, classes: dict[tuple, int | None]) -> str:
    """'pretrain', 'downstream', 'pretrain+downstream' or '' for a finished trial (the rules:
    :func:`~raysweep.report.stats.pretrain_at_chance`, :func:`~raysweep.report.stats.downstream_at_chance`)."""
    if row["status"] != "done":
        return ""
    try:
        cfg = experiment.config_for(experiment.with_seed(params))
    except (ConfigError, KeyError, ValueError, TypeError):  # a trial whose configuration no longer resolves
        return ""
    where = (cfg.score.dataset, cfg.score.data_root)
    if where not in classes:
        classes[where] = downstream_classes(*where)
    flags = ["pretrain"] if pretrain_at_chance(row["pretrain_top1"], row["pretrain_loss"], cfg.data.L) else []
    if classes[where] and downstream_at_chance(row["top1"], classes[where]):
        flags.append("downstream")
    return "+".join(flags)


def downstream_classes(dataset: str, data_root: str | None) -> int | None:
    """The downstream dataset's number of classes: the built-in ones' from the table, an
    ImageFolder's by counting its ``train/`` class folders (None where they cannot be listed)."""
    if dataset in DOWNSTREAM_CLASSES:
        return DOWNSTREAM_CLASSES[dataset]
    if dataset != "imagefolder" or not data_root:
        return None
    uri = join(str(data_root), "train")
    fs, path = filesystem(uri)
    try:
        if is_s3(uri):
            fs.invalidate_cache(path)
        entries = fs.ls(path, detail=True)
    except Exception:  # noqa: BLE001 - unreachable or gone since the sweep: no downstream flag
        return None
    names = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory"]
    return sum(not n.startswith(".") for n in names) or None


def group_rows(rows: list[dict], keys: list[str]) -> list[dict]:
    """Configurations (rows grouped by the swept keys other than seed), over their finished seeds:
    per metric its mean, std and :class:`~raysweep.report.stats.Estimate` (``{column}_est``), and
    the seeds whose pre-training (``chance_pretrain``) or downstream score (``chance_downstream``)
    stayed at chance."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(k)) for k in keys), []).append(row)
    out = []
    for _, members in groups.items():
        agg: dict[str, Any] = {k: members[0].get(k) for k in keys}
        agg["seeds"] = len(members)
        done = [m for m in members if m["status"] == "done"]
        for column in ("top1", "top5", "pretrain_loss", "pretrain_top1", "wall_seconds", *probe_columns(members)):
            est = estimate(m.get(column) for m in done)
            agg[f"{column}_est"] = est
            agg[f"{column}_mean"] = est.mean
            agg[f"{column}_std"] = est.std if est.n > 1 else (0.0 if est.n else None)
        for flag in ("pretrain", "downstream"):
            agg[f"chance_{flag}"] = [m["seed"] for m in done if flag in (m.get("at_chance") or "").split("+")]
        out.append(agg)
    return out


def value_order(value) -> tuple:
    """Swept values in order: numbers as numbers, then the rest by name."""
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def _config_label(g: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={g.get(k)}" if k != "variant" else str(g.get(k)) for k in keys) or "the configuration"


def chance_notes(groups: list[dict], keys: list[str], score_mode: str = "finetune") -> list[str]:
    """The footnotes of the marks: which configurations, which seeds, and the rule."""
    notes = []
    for flag, mark, rule in (
        ("pretrain", PRETRAIN_MARK, f"pre-training stayed at chance: its final train top-1 within {PRETRAIN_CHANCE_POINTS:g} "
                                    f"points of 100/L (where it reported none: loss ≥ {PRETRAIN_CHANCE_LOSS * 100:g} % of ln L)"),
        ("downstream", DOWNSTREAM_MARK, f"the downstream {'probe' if score_mode == 'linear_probe' else 'fine-tune'} ended at "
                                        f"chance: top-1 within {DOWNSTREAM_CHANCE_POINTS:g} points of 100/classes"),
    ):
        hits = [f"{_config_label(g, keys)} (seed{'s' if len(g[f'chance_{flag}']) > 1 else ''} "
                f"{', '.join(map(str, g[f'chance_{flag}']))})" for g in groups if g[f"chance_{flag}"]]
        if hits:
            notes.append(f"{mark} {rule}: {'; '.join(hits)}.")
    return notes


Table = tuple[list[str], list[list[str]], list[str]]  # header, cells, the notes under it


def summary_table(rows: list[dict], keys: list[str], score_mode: str = "finetune") -> Table:
    """Configurations over seeds, best first: the header, the cells (every metric its mean and 95 %
    interval) and the notes under the table (results.md and report.html)."""
    grouped = sorted(group_rows(rows, keys), key=lambda g: -(g["top1_mean"] if g["top1_mean"] is not None else -math.inf))
    probes = probe_columns(rows)
    pretrained = any(isinstance(r.get("pretrain_top1"), float) for r in rows)
    ci = f", mean [{INTERVAL}]"
    head = [*keys, f"downstream top-1 (%){ci}", f"downstream top-5 (%){ci}", *[f"probe {EXTRA_PROBE.match(p).group(1)} top-1 (%){ci}" for p in probes],
            f"pre-train loss{ci}", *([f"pre-train top-1 (%){ci}"] if pretrained else []), f"wall (s){ci}", "top-1 std", "seeds"]
    body = []
    for g in grouped:
        # the marks go on the metric they are about (pre-training's on the top-1 cell when it has no column)
        pre_marks = PRETRAIN_MARK * bool(g["chance_pretrain"])
        top1_marks = DOWNSTREAM_MARK * bool(g["chance_downstream"]) + ("" if pretrained else pre_marks)
        cells = [str(g[k]) for k in keys]
        cells += [_marked(fmt_estimate(g["top1_est"]), top1_marks), fmt_estimate(g["top5_est"]), *[fmt_estimate(g[f"{p}_est"]) for p in probes],
                  fmt_estimate(g["pretrain_loss_est"], 3),
                  *([_marked(fmt_estimate(g["pretrain_top1_est"]), pre_marks)] if pretrained else []),
                  fmt_estimate(g["wall_seconds_est"], 0), _num(g["top1_std"]) if g["top1_est"].n > 1 else "—",
                  str(g["seeds"])]
        body.append(cells)
    counts = [g["top1_est"].n for g in grouped]
    if counts and max(counts) < 2:
        notes = ["One seed: every cell is a mean alone, with no interval (one seed gives none; repeat over seeds with "
                 "sweep.seeds=[0,1,2] for 95 % intervals)."]
    else:
        notes = [f"Intervals: {INTERVAL_WORDS}, [mean − t·s/√n, mean + t·s/√n]."]
        if 1 in counts:
            notes.append("A configuration with one finished seed shows its mean alone: one seed gives no interval.")
    return head, body, notes + chance_notes(grouped, keys, score_mode)


def _marked(text: str, marks: str) -> str:
    return f"{text} {marks}" if marks else text


def _num(value, digits: int = 1) -> str:
    return "—" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


def difference_table(rows: list[dict], keys: list[str], baseline: Baseline) -> Table:
    """Each configuration minus its baseline, paired by seed: header, cells and notes."""
    columns = ["top1", *probe_columns(rows)]
    diffs = paired_differences(rows, keys, baseline, columns)
    diffs.sort(key=lambda d: tuple(value_order(d.config[k]) for k in keys))
    names = {"top1": "downstream top-1", **{p: f"probe {EXTRA_PROBE.match(p).group(1)} top-1" for p in columns[1:]}}
    head = [*keys, "seeds paired", *[f"{names[c]} minus baseline (points), mean [{INTERVAL}]" for c in columns],
            "top-1 difference significant at 95 %"]
    body = []
    for d in diffs:
        top1: Estimate = d.estimates["top1"]
        verdict = ("yes" if top1.significant else "no") if top1.half is not None else \
            ("no interval (one seed)" if top1.n else "—")
        cells = [_marked(fmt_estimate(d.estimates[c], signed=True), "✓" * d.estimates[c].significant) for c in columns]
        body.append([*[str(d.config[k]) for k in keys], ", ".join(map(str, d.seeds)) or "none", *cells, verdict])
    notes = [f"Baseline: {baseline.label}, {baseline.why}. Each configuration minus the baseline with the same values of "
             "the other swept keys, seed by seed (only seeds both finished); the mean difference and its 95 % confidence "
             "interval (Student's t, n − 1 degrees of freedom over the paired seeds). ✓: the interval excludes 0, "
             "a difference that is significant at 95 %."]
    if any(0 < d.estimates["top1"].n < 2 for d in diffs):
        notes.append("With one paired seed a difference has no interval and cannot be called significant.")
    return head, body, notes


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(cells) + " |" for cells in body)]


def markdown(rows: list[dict], keys: list[str], title: str, experiment=None) -> str:
    mode = experiment.cfg.score.mode if experiment is not None else "finetune"
    head, body, notes = summary_table(rows, keys, mode)
    lines = [f"# {title}", "", *_md_table(head, body), *[line for n in notes for line in ("", n)]]
    baseline = baseline_of(experiment) if experiment is not None else None
    if baseline is not None and baseline.key in keys:
        head, body, notes = difference_table(rows, keys, baseline)
        lines += ["", f"## Difference to {baseline.label} (paired by seed)", "", *_md_table(head, body),
                  *[line for n in notes for line in ("", n)]]
    return "\n".join(lines).rstrip() + "\n"


def csv_text(rows: list[dict]) -> str:
    import csv

    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


#: the most lines a plot draws, one per setting of the other swept keys (more: pooled into one)
MAX_SERIES = 8


@dataclass
class Series:
    label: str | None  # the other swept keys' setting (None: the only line)
    xs: list[float]
    means: list[float]
    halves: list[float | None]  # the 95 % interval's half-width per point (None: one seed)


def plot_series(rows: list[dict], key: str, group_keys: list[str]) -> tuple[list, bool, list[Series], str]:
    """What :func:`plot` draws: the x values (in order), whether they are numeric, one series per
    setting of the other swept keys (pooled into one past MAX_SERIES), and the title."""
    done = [r for r in rows if r["status"] == "done" and isinstance(r.get("top1"), (int, float))]
    others = [k for k in group_keys if k != key]
    groups: dict[tuple, list[dict]] = {}
    for r in done:
        groups.setdefault(tuple(str(r.get(k)) for k in others), []).append(r)
    pooled = len(groups) > MAX_SERIES
    members_of = [done] if pooled else sorted(groups.values(), key=lambda m: tuple(value_order(m[0].get(k)) for k in others))
    values = sorted({str(r.get(key)): r.get(key) for r in done}.values(), key=value_order)
    numeric = all(isinstance(v, (int, float)) for v in values) and len(values) > 1
    series, ns = [], []
    for i, members in enumerate(members_of):
        points = sorted(group_rows(members, [key]), key=lambda g: value_order(g[key]))
        ests = [g["top1_est"] for g in points]
        ns += [e.n for e in ests]
        shift = (i - (len(members_of) - 1) / 2) * 0.06 if not numeric else 0.0  # categorical: side by side, not on top
        xs = [float(g[key]) if numeric else values.index(g[key]) + shift for g in points]
        label = None if pooled or not others else _config_label(members[0], others)
        series.append(Series(label, xs, [e.mean for e in ests], [e.half for e in ests]))
    bars = ("one seed per point: means alone, no interval" if ns and max(ns) < 2
            else "mean ± 95 % CI over seeds (Student's t, n − 1 df)")
    title = f"top-1 vs {key}: {bars}" + (", pooled over the other swept keys" if pooled else "")
    return values, numeric, series, title


def plot(rows: list[dict], key: str, group_keys: list[str]) -> bytes:
    """PNG: downstream top-1 against ``key``, one line per setting of the other swept keys: the mean
    over seeds with its 95 % t interval as error bars (none where a point has one seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values, numeric, series, title = plot_series(rows, key, group_keys)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    for s in series:
        ax.errorbar(s.xs, s.means, yerr=[h or 0.0 for h in s.halves], fmt="o-" if numeric else "o", capsize=4, label=s.label,
                    color="#1f5fa8" if len(series) == 1 else None)
    if not numeric:
        ax.set_xticks(list(range(len(values))), [str(v) for v in values], rotation=20, ha="right")
    if numeric and key.endswith(("delta", "lr")) and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel("downstream top-1 (%)")
    ax.grid(alpha=0.3)
    if any(s.label for s in series):
        ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def results_title(experiment) -> str:
    """The title of ``results.md``."""
    cfg = experiment.cfg
    return f"{cfg.name}: downstream {cfg.score.dataset} ({cfg.score.mode})"


def config_keys(experiment) -> list[str]:
    """The keys configurations are grouped by: the swept keys other than the seed."""
    return [k for k in experiment.swept_keys() if k != "seed"]


def trial_params(row: dict, experiment) -> dict[str, Any]:
    """The Tune parameters of a trial's row (its swept values, variant index and seed)."""
    params = {k: row[k] for k in experiment.space}
    if experiment.variants:
        params["variant"] = next(i for i in range(len(experiment.variants)) if experiment.variant_name(i) == row["variant"])
    params["seed"] = row["seed"]
    return params


def _what_is_scored(experiment) -> str:
    s = experiment.cfg.score
    mode = f"linear probe at score.probe_blocks={s.probe_blocks}" if s.mode == "linear_probe" else "fine-tune"
    return f"{s.dataset}" + (f" ({s.shots} training images per class)" if s.shots else "") + f", {mode}"


def comparison_lines(rows: list[dict], experiment) -> list[str]:
    """What a sweep prints at its end, in plain text: each configuration's downstream top-1, the mean
    over its seeds with the 95 % interval, beside its pre-training's final train top-1 and that
    task's chance; then each configuration minus the baseline, paired by seed, with its interval
    and, in words, whether the difference is significant at 95 % (or why there is no verdict)."""
    keys = config_keys(experiment)
    done = [r for r in rows if r["status"] == "done" and isinstance(r.get("top1"), (int, float))]
    if not done:
        return ["no trial finished: nothing to compare"]
    groups = sorted(group_rows(done, keys), key=lambda g: -g["top1_mean"])
    chance: dict[str, float] = {}
    for r in done:  # pre-training's chance, 100/L, per configuration
        try:
            chance.setdefault(_config_label(r, keys), 100.0 / experiment.config_for(trial_params(r, experiment)).data.L)
        except (ConfigError, KeyError, ValueError, TypeError, StopIteration):
            pass
    counts = {g["top1_est"].n for g in groups}
    over = (f"{min(counts)} seed{'s' if min(counts) > 1 else ''}" if len(counts) == 1 else "the seeds each finished (n)")
    lines = [f"downstream top-1 (%) on {_what_is_scored(experiment)}: mean [{INTERVAL}] over {over}"
             + (" (one seed gives no interval)" if max(counts) < 2 else "")]
    width = max(len(_config_label(g, keys)) for g in groups)
    for g in groups:
        label = _config_label(g, keys)
        text = f"  {label:<{width}}  {fmt_estimate(g['top1_est'])}" + (f" (n = {g['top1_est'].n})" if len(counts) > 1 else "")
        pre = g["pretrain_top1_est"]
        if pre.mean is not None:
            text += f"   pre-training train top-1 {pre.mean:.1f}" + (f" (chance {chance[label]:.1f})" if label in chance else "")
        marks = (PRETRAIN_MARK if g["chance_pretrain"] else "") + (DOWNSTREAM_MARK if g["chance_downstream"] else "")
        lines.append(text + (f" {marks}" if marks else ""))
    lines += [f"  {n}" for n in chance_notes(groups, keys, experiment.cfg.score.mode)]
    if len(groups) < 2:
        return lines
    baseline = baseline_of(experiment)
    if baseline is None or baseline.key not in keys:
        return lines + ["no baseline to compare with (name one: baseline.variant=... or baseline.<swept key>=...)"]
    for d in sorted(paired_differences(done, keys, baseline, ["top1"]), key=lambda d: tuple(value_order(d.config[k]) for k in keys)):
        est: Estimate = d.estimates["top1"]
        if est.half is not None:
            verdict = ("significant at 95 %" if est.significant
                       else "NOT significant at 95 % (the interval includes 0: no difference shown at this budget)")
        else:
            verdict = ("one paired seed: no interval, so no verdict (repeat over seeds)" if est.n
                       else "no seed finished in both: nothing to compare")
        lines.append(f"{_config_label(d.config, keys)} minus {baseline.label}, paired by seed "
                     f"({', '.join(map(str, d.seeds)) or 'none'}): {fmt_estimate(est, signed=True)} points of top-1: {verdict}")
    return lines


def write_outputs(run_dir: str, rows: list[dict], experiment, title: str | None = None) -> list[str]:
    """Write results.csv, results.md, best.yaml and the plots into ``run_dir``; return their URIs."""
    import yaml

    title = title or results_title(experiment)
    keys = config_keys(experiment)
    written = [join(run_dir, name) for name in ("results.csv", "results.md")]
    atomic_write(join(run_dir, "results.csv"), csv_text(rows).encode())
    atomic_write(join(run_dir, "results.md"), markdown(rows, keys, title, experiment).encode())
    done = [r for r in rows if r["status"] == "done" and r["top1"] is not None]
    if done:
        best_group = max(group_rows(done, keys), key=lambda g: g["top1_mean"])
        # its best seed: the trial whose pre-trained model best.yaml names (python -m raysweep.export takes it)
        best_row = max((r for r in done if all(str(r.get(k)) == str(best_group[k]) for k in keys)), key=lambda r: r["top1"])
        from raysweep.config import to_dict

        resolved = to_dict(experiment.config_for(trial_params(best_row, experiment)))
        est = best_group["top1_est"]
        doc = {"top1_mean": best_group["top1_mean"], "top1_std": best_group["top1_std"],
               "top1_ci95": None if est.half is None else [est.low, est.high], "seeds": best_group["seeds"],
               "swept": {k: best_group[k] for k in keys}, "checkpoint": best_row.get("model_uri"),
               "best_trial": {"trial": best_row["trial"], "seed": best_row["seed"], "top1": best_row["top1"]}, "config": resolved}
        atomic_write(join(run_dir, "best.yaml"), yaml.safe_dump(doc, sort_keys=False).encode())
        written.append(join(run_dir, "best.yaml"))
    for key in keys:
        uri = join(run_dir, "plots", f"top1_vs_{key.replace('.', '_')}.png")
        atomic_write(uri, plot(rows, key, keys))
        written.append(uri)
    return written
