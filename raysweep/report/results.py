"""A sweep's results as people read them: ``results.csv`` (one row per trial), ``results.md``
(configurations aggregated over seeds: mean ± std), ``best.yaml`` (the best configuration,
resolved) and ``plots/top1_vs_<key>.png`` (downstream top-1 against each swept key, error bars
over seeds). Every file is written atomically."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np

from raysweep.storage import atomic_write, join

COLUMNS = ("top1", "top5", "best_top1", "pretrain_loss", "pretrain_top1", "probe_top1", "trial_seconds")
EXTRA_PROBE = re.compile(r"^probe(\d+)_top1$")  # score.extra_probes: probe{k}_top1


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
    """One dict per trial: swept values, status and metrics."""
    rows = []
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
        for column in [*COLUMNS, *sorted(k for k in metrics if EXTRA_PROBE.match(k))]:
            value = metrics.get(column)
            row[column] = float(value) if isinstance(value, (int, float)) else None
        row["wall_seconds"] = metrics.get("time_total_s")
        row["model_uri"] = metrics.get("model_uri")  # the pre-trained model it scored (None: scratch)
        rows.append(row)
    extra = probe_columns(rows)
    for row in rows:  # every row has every column (CSV)
        for column in extra:
            row.setdefault(column, None)
    return rows


def group_rows(rows: list[dict], keys: list[str]) -> list[dict]:
    """Configurations (rows grouped by the swept keys other than seed): mean and std over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(k)) for k in keys), []).append(row)
    out = []
    for _, members in groups.items():
        agg: dict[str, Any] = {k: members[0].get(k) for k in keys}
        agg["seeds"] = len(members)
        for column in ("top1", "top5", "pretrain_loss", "pretrain_top1", "wall_seconds", *probe_columns(members)):
            values = [m[column] for m in members if isinstance(m.get(column), (int, float)) and m["status"] == "done"]
            agg[f"{column}_mean"] = float(np.mean(values)) if values else None
            agg[f"{column}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else (0.0 if values else None)
        out.append(agg)
    return out


def fmt_mean_std(mean, std, digits=1) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def summary_table(rows: list[dict], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """Configurations over seeds, best first: the header and the cells (results.md and report.html)."""
    grouped = sorted(group_rows(rows, keys), key=lambda g: -(g["top1_mean"] if g["top1_mean"] is not None else -math.inf))
    probes = probe_columns(rows)
    pretrained = any(isinstance(r.get("pretrain_top1"), float) for r in rows)
    head = [*keys, "downstream top-1 (%)", "downstream top-5 (%)", *[f"probe {EXTRA_PROBE.match(p).group(1)} top-1 (%)" for p in probes],
            "pre-train loss", *(["pre-train top-1 (%)"] if pretrained else []), "wall (s)", "seeds"]
    body = []
    for g in grouped:
        cells = [str(g[k]) for k in keys]
        cells += [fmt_mean_std(g["top1_mean"], g["top1_std"]), fmt_mean_std(g["top5_mean"], g["top5_std"]),
                  *[fmt_mean_std(g.get(f"{p}_mean"), g.get(f"{p}_std")) for p in probes],
                  fmt_mean_std(g["pretrain_loss_mean"], g["pretrain_loss_std"], 3),
                  *([fmt_mean_std(g["pretrain_top1_mean"], g["pretrain_top1_std"])] if pretrained else []),
                  fmt_mean_std(g["wall_seconds_mean"], g["wall_seconds_std"], 0), str(g["seeds"])]
        body.append(cells)
    return head, body


def markdown(rows: list[dict], keys: list[str], title: str) -> str:
    head, body = summary_table(rows, keys)
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    import csv

    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plot(rows: list[dict], key: str, group_keys: list[str]) -> bytes:
    """PNG: downstream top-1 against ``key`` (mean ± std over seeds and the other swept keys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = group_rows([r for r in rows if r["status"] == "done"], [key])
    def order(g):
        v = g[key]
        return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))
    grouped.sort(key=order)
    labels = [str(g[key]) for g in grouped]
    means = [g["top1_mean"] or 0.0 for g in grouped]
    stds = [g["top1_std"] or 0.0 for g in grouped]
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    numeric = all(isinstance(g[key], (int, float)) for g in grouped) and len(grouped) > 1
    xs = [float(g[key]) for g in grouped] if numeric else list(range(len(grouped)))
    ax.errorbar(xs, means, yerr=stds, fmt="o-" if numeric else "o", capsize=4, color="#1f5fa8")
    if not numeric:
        ax.set_xticks(xs, labels, rotation=20, ha="right")
    if numeric and key.endswith(("delta", "lr")) and min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel("downstream top-1 (%)")
    ax.grid(alpha=0.3)
    ax.set_title(f"top-1 vs {key} (mean ± std over seeds)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_outputs(run_dir: str, rows: list[dict], experiment, title: str) -> None:
    import yaml

    keys = [k for k in experiment.swept_keys() if k != "seed"]
    atomic_write(join(run_dir, "results.csv"), csv_text(rows).encode())
    atomic_write(join(run_dir, "results.md"), markdown(rows, keys, title).encode())
    done = [r for r in rows if r["status"] == "done" and r["top1"] is not None]
    if done:
        best_group = max(group_rows(done, keys), key=lambda g: g["top1_mean"])
        # its best seed: the trial whose pre-trained model best.yaml names (python -m raysweep.export takes it)
        best_row = max((r for r in done if all(str(r.get(k)) == str(best_group[k]) for k in keys)), key=lambda r: r["top1"])
        params = {k: best_row[k] for k in experiment.space}
        if experiment.variants:
            params["variant"] = next(i for i in range(len(experiment.variants)) if experiment.variant_name(i) == best_row["variant"])
        params["seed"] = best_row["seed"]
        from raysweep.config import to_dict

        resolved = to_dict(experiment.config_for(params))
        doc = {"top1_mean": best_group["top1_mean"], "top1_std": best_group["top1_std"], "seeds": best_group["seeds"],
               "swept": {k: best_group[k] for k in keys}, "checkpoint": best_row.get("model_uri"),
               "best_trial": {"trial": best_row["trial"], "seed": best_row["seed"], "top1": best_row["top1"]}, "config": resolved}
        atomic_write(join(run_dir, "best.yaml"), yaml.safe_dump(doc, sort_keys=False).encode())
    for key in keys:
        atomic_write(join(run_dir, "plots", f"top1_vs_{key.replace('.', '_')}.png"), plot(rows, key, keys))
