"""``report.html``: one self-contained page (images embedded as data URIs, no external resource)
that shows a sweep, finished or in progress: its resolved configuration, the trials (a sortable
table, trials at chance flagged), means over seeds with their 95 % intervals, each configuration's
difference to the baseline paired by seed, top-1 against each swept key, pre-training curves,
contact sheets of the datasets it pre-trained on, and, for the paper's studies, our numbers beside
the published reference."""

from __future__ import annotations

import base64
import datetime
import html
import io
from typing import Any

import numpy as np

from raysweep.report.paper import Reference, published_value, reference_for
from raysweep.report.records import RunRecord, TrialRecord, load_run
from raysweep.report.results import (COLUMNS, DOWNSTREAM_MARK, EXTRA_PROBE, INTERVAL, PRETRAIN_MARK, chance_notes,
                                     difference_table, group_rows, plot, summary_table, trial_rows, value_order)
from raysweep.report.stats import baseline_of, fmt_estimate
from raysweep.storage import atomic_write, exists, join

REPORT_FILE = "report.html"
SHEET_CLASSES, SHEET_INSTANCES = 8, 2  # contact sheets: the first classes of each dataset, a few instances each


def write_report(run_dir: str | RunRecord) -> str:
    """Build ``RUN_DIR/report.html`` from what the run directory holds now (or from ``run``, the
    run directory as read already); return its URI."""
    run = load_run(run_dir) if isinstance(run_dir, str) else run_dir
    uri = join(run.run_dir, REPORT_FILE)
    atomic_write(uri, render_page(run).encode())
    return uri


def render_page(run: RunRecord) -> str:
    exp = run.experiment
    rows = trial_rows(run.trials, exp)
    finished = exists(join(run.run_dir, "results.csv"))
    for row in rows:  # a trial neither done nor failed is still running, unless the sweep is over (stopped early)
        if row["status"] == "stopped" and not finished:
            row["status"] = "running"
    keys = [k for k in exp.swept_keys() if k != "seed"]
    cfg = exp.cfg
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "running", "stopped", "error")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no trial has started"
    sections = [
        f"<h1>{_e(cfg.name)}</h1>",
        f"<p class='meta'>{_e(run.run_dir)} · {len(rows)} trials: {_e(summary)} · "
        f"downstream {_e(cfg.score.dataset)} ({_e(cfg.score.mode)}) · generated {_e(_now())}</p>",
        _paper_section(reference_for(exp.study), rows, keys, cfg),
        _summary_section(rows, keys, cfg.score.mode),
        _differences_section(rows, keys, exp),
        _trials_section(rows, keys),
        _plots_section(rows, keys),
        _curves_section(run.trials, rows),
        _datasets_section(run),
        _config_section(exp),
    ]
    return PAGE.format(title=_e(f"raysweep: {cfg.name}"), style=STYLE, script=SCRIPT, body="\n".join(s for s in sections if s))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _num(value, digits: int = 1) -> str:
    return "—" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _paper_section(ref: Reference | None, rows: list[dict], keys: list[str], cfg) -> str:
    if ref is None:
        return ""
    done = [r for r in rows if r["status"] == "done"]
    column_key = ref.key if ref.key in keys else (keys[0] if keys else None)
    head: list[str] = [""]
    cells_ours, cells_top5, cells_paper, notes = [], [], [], []
    if column_key:
        groups = sorted(group_rows(done, [column_key]), key=lambda g: value_order(g[column_key]))
        head = [column_key] + [str(g[column_key]) for g in groups]
        cells_ours = [_marked(fmt_estimate(g["top1_est"]), g) for g in groups]
        cells_top5 = [fmt_estimate(g["top5_est"]) for g in groups]
        cells_paper = [_published(published_value(ref, g[column_key])) for g in groups]
        notes = chance_notes(groups, [column_key], cfg.score.mode)
    ours = f"ours: {cfg.model.name}, {cfg.score.dataset} ({cfg.score.mode}), top-1 (%), mean [{INTERVAL}] over seeds"
    top5_row = ("<tr class='top5'><th>ours: top-5 (%)</th>" + "".join(f"<td>{_e(c)}</td>" for c in cells_top5) + "</tr>"
                if any(c != "—" for c in cells_top5) else "")
    table = (
        "<table class='paper'><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
        f"<tr><th>{_e(ours)}</th>" + "".join(f"<td>{_e(c)}</td>" for c in cells_ours) + "</tr>" + top5_row +
        f"<tr class='published'><th>published reference ({_e(ref.table)}): {_e(ref.setting)}</th>"
        + "".join(f"<td>{_e(c)}</td>" for c in cells_paper) + "</tr></tbody></table>"
    )
    note = f"<p class='note'>{_e(ref.note)}</p>" if ref.note else ""
    return (f"<section id='paper'><h2>The paper's {_e(ref.table)}, beside ours</h2>{table}{_notes(notes)}"
            f"<p class='published'><b>Published reference</b> ({_e(ref.table)}): {_e(ref.finding)}</p>{note}"
            "<p class='note'>The published numbers come from the paper's setting, not this budget: compare directions, "
            "not values, unless the run used <code>budget=paper</code>.</p></section>")


def _published(value) -> str:
    """A published reference cell: a number (top-1, %), or the finding in words."""
    return value if isinstance(value, str) else _num(value)


def _marked(text: str, g: dict) -> str:
    """A cell with the marks of its configuration's trials at chance."""
    marks = (PRETRAIN_MARK if g["chance_pretrain"] else "") + (DOWNSTREAM_MARK if g["chance_downstream"] else "")
    return f"{text} {marks}" if marks else text


def _notes(notes: list[str]) -> str:
    return "".join(f"<p class='note'>{_e(n)}</p>" for n in notes)


def _table(head: list[str], body: list[list[str]], attrs: str = "class='sortable'") -> str:
    return (f"<table {attrs}><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>" for cells in body) + "</tbody></table>")


def _summary_section(rows: list[dict], keys: list[str], score_mode: str) -> str:
    done = [r for r in rows if r["status"] == "done"]
    if not done:
        return "<section id='summary'><h2>Summary</h2><p>No trial has finished yet.</p></section>"
    head, body, notes = summary_table(done, keys, score_mode)
    return (f"<section id='summary'><h2>Summary (finished trials: mean and {INTERVAL} over seeds)</h2>"
            f"{_table(head, body)}{_notes(notes)}</section>")


def _differences_section(rows: list[dict], keys: list[str], exp) -> str:
    """Each configuration's difference to the baseline, paired by seed (or why there is none)."""
    done = [r for r in rows if r["status"] == "done"]
    if len(group_rows(done, keys)) < 2:
        return ""
    baseline = baseline_of(exp)
    if baseline is None or baseline.key not in keys:
        return ("<section id='differences'><h2>Differences</h2><p class='note'>No baseline to compare with: the experiment "
                "has no scratch variant (pretrain.steps: 0), no study with a reference setting, and names none "
                "(e.g. <code>baseline.variant=scratch</code> or <code>baseline.data.delta=0.1</code>).</p></section>")
    head, body, notes = difference_table(done, keys, baseline)
    table = _table(head, body, "class='sortable' id='differences-table'")
    return (f"<section id='differences'><h2>Difference to {_e(baseline.label)} (paired by seed)</h2>"
            f"{table}{_notes(notes)}</section>")


def _trials_section(rows: list[dict], keys: list[str]) -> str:
    if not rows:
        return "<section id='trials'><h2>Trials</h2><p>No trial has started yet.</p></section>"
    columns = [k for k in rows[0] if k != "trial"]
    body = []
    for row in sorted(rows, key=lambda r: r["trial"]):
        cells = [f"<td title='{_e(row['trial'])}'>{_e(row['trial'].split('_')[3] if row['trial'].count('_') >= 3 else row['trial'])}</td>"]
        for c in columns:
            v = row.get(c)
            if v is None:
                text = "—"
            elif isinstance(v, float) and _is_metric(c):
                text = _num(v, 3 if c == "pretrain_loss" else 1)
            else:  # a swept value as it was given (Δ = 0.01 is not 0.0), a seed, a status, a URI
                text = str(v)
            sort = f" data-sort='{v}'" if isinstance(v, (int, float)) else ""
            css = f"status-{v}" if c == "status" else ("flag" if c == "at_chance" and v else "")
            cells.append(f"<td class='{_e(css)}'{sort}>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    flagged = sum(bool(r.get("at_chance")) for r in rows)
    note = (f"<p class='note'>at_chance: {flagged} trial{'s' if flagged != 1 else ''} whose pre-training stayed at chance "
            "(pretrain) or whose downstream score ended at chance (downstream); the rules are under the summary.</p>"
            if flagged else "")
    return ("<section id='trials'><h2>Trials <span class='hint'>(click a column to sort)</span></h2>"
            "<table class='sortable' id='trials-table'><thead><tr><th>trial</th>"
            + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>"
            + note + "</section>")


def _plots_section(rows: list[dict], keys: list[str]) -> str:
    done = [r for r in rows if r["status"] == "done" and r["top1"] is not None]
    if not done or not keys:
        return ""
    figures = [f"<figure>{_img(plot(done, key, keys), f'top-1 vs {key}')}<figcaption>downstream top-1 against {_e(key)}, "
               "one line per setting of the other swept keys: the mean over seeds and, as error bars, its 95 % confidence "
               "interval (Student's t, n − 1 degrees of freedom; none where a point has one seed)</figcaption></figure>"
               for key in keys]
    return "<section id='plots'><h2>Downstream top-1 against each swept key</h2>" + "".join(figures) + "</section>"


def _trial_label(row: dict, keys: list[str]) -> str:
    parts = [f"{row.get(k)}" for k in keys]
    return " ".join(parts + [f"seed {row.get('seed')}"])


def _curves_section(trials: list[TrialRecord], rows: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_trial = {r["trial"]: r for r in rows}
    keys = [k for k in rows[0] if k not in ("trial", "seed", "status") and not _is_metric(k)] if rows else []
    curves = []
    for t in trials:
        points = [(h["step"], h["loss"], h.get("train_top1"), h.get("probe_top1")) for h in t.history if "loss" in h and "step" in h]
        if points:
            curves.append((_trial_label(by_trial.get(t.path.rsplit("/", 1)[-1], {}), keys), np.array(points, dtype=float)))
    if not curves:
        return ""
    has_probe = any(np.isfinite(c[:, 3]).any() for _, c in curves)
    panels = 3 if has_probe else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), dpi=100)
    for label, c in curves:
        axes[0].plot(c[:, 0], c[:, 1], label=label)
        axes[1].plot(c[:, 0], c[:, 2], label=label)
        if has_probe:
            ok = np.isfinite(c[:, 3])
            axes[2].plot(c[ok, 0], c[ok, 3], "o-", label=label, markersize=3)
    for ax, title in zip(axes, ["pre-training loss (LPCE)", "pre-training top-1 (%)", "quick downstream probe top-1 (%)"]):
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    if len(curves) <= 12:
        axes[-1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return ("<section id='curves'><h2>Pre-training curves, per trial</h2>"
            f"<figure>{_img(buf.getvalue(), 'pre-training curves')}<figcaption>{len(curves)} trials with pre-training</figcaption></figure></section>")


def _is_metric(key: str) -> bool:
    return key in (*COLUMNS, "wall_seconds") or bool(EXTRA_PROBE.match(key))


def _datasets_section(run: RunRecord) -> str:
    """A contact sheet of the first classes of every dataset the trials pre-trained on: the dataset
    each trial reports (its URI; nothing is resolved or fetched again here)."""
    exp = run.experiment
    seen: dict[str, str] = {}
    for t in run.trials:
        uri = next((r["dataset"] for r in reversed(t.history) if r.get("dataset")), None)
        if uri is None:
            continue
        try:
            cfg = exp.config_for(exp.with_seed(t.config))
            from raysweep.render.sources import dataset_label

            label = dataset_label(cfg.data)
        except Exception:  # noqa: BLE001 - a trial whose config no longer resolves: its URI says enough
            label = uri.rstrip("/").rsplit("/", 1)[-1]
        seen.setdefault(uri, label)
    figures = []
    for uri, label in seen.items():
        png = _contact_sheet(uri)
        if png is None:
            figures.append(f"<figure class='missing'><figcaption>{_e(label)}: not rendered (yet)<br><code>{_e(uri)}</code></figcaption></figure>")
        else:
            figures.append(f"<figure>{_img(png, label)}<figcaption>{_e(label)}<br><code>{_e(uri)}</code></figcaption></figure>")
    if not figures:
        return ""
    return (f"<section id='datasets'><h2>Datasets pre-trained on (first {SHEET_CLASSES} classes, "
            f"up to {SHEET_INSTANCES} instances each)</h2>" + "".join(figures) + "</section>")


def _contact_sheet(dataset_uri: str) -> bytes | None:
    import pyarrow.parquet as pq

    from raysweep.dataset.png import decode_png
    from raysweep.dataset.readers import manifest_of, shard_uris
    from raysweep.render.preview import contact_sheet
    from raysweep.storage import read_bytes

    try:
        manifest_of(dataset_uri)
        first = shard_uris(dataset_uri)[0]
        table = pq.read_table(io.BytesIO(read_bytes(first)), columns=["image", "label", "instance"])
    except Exception:  # noqa: BLE001 - not rendered, or not complete: the page says so
        return None
    tiles = []
    for image, label, instance in zip(table.column("image").to_pylist(), table.column("label").to_pylist(), table.column("instance").to_pylist()):
        if label < SHEET_CLASSES and instance < SHEET_INSTANCES:
            tiles.append((f"{label}.{instance}", decode_png(image)))
    if not tiles:
        return None
    buf = io.BytesIO()
    contact_sheet(tiles, tile=96, cols=min(len(tiles), SHEET_CLASSES)).save(buf, format="PNG")
    return buf.getvalue()


def _config_section(exp) -> str:
    import yaml

    from raysweep.config import to_dict

    resolved = to_dict(exp.cfg)
    if exp.budget:
        resolved = {"budget": exp.budget, **resolved}
    if exp.study:
        resolved = {"study": exp.study, **resolved}
    swept = set(exp.space) | {k for v in exp.variants for k in v if k != "label"}
    for key in swept:  # the base value of a swept key is only the search's first point: say so instead
        *parents, leaf = key.split(".")
        node = resolved
        for p in parents:
            node = node.get(p, {})
        if leaf in node:
            node[leaf] = "(swept: see below)"
    parts = [f"<h3>Base configuration (resolved)</h3><pre>{_e(yaml.safe_dump(resolved, sort_keys=False))}</pre>"]
    if exp.space:
        parts.append(f"<h3>Search space</h3><pre>{_e(yaml.safe_dump(exp.space, sort_keys=False))}</pre>")
    if exp.variants:
        parts.append(f"<h3>Variants</h3><pre>{_e(yaml.safe_dump(exp.variants, sort_keys=False))}</pre>")
    return "<section id='config'><h2>The experiment's configuration</h2>" + "".join(parts) + "</section>"


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #1d1d1f; }
h1 { margin-bottom: 0; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta, .note, .hint { color: #666; font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f5f7; text-align: center; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th.asc::after { content: " \\25B2"; } table.sortable th.desc::after { content: " \\25BC"; }
tr.published, p.published { background: #fff8e1; }
tr.published th { font-weight: normal; font-style: italic; }
td.flag { background: #fdecea; color: #b3261e; }
.status-done { color: #137333; } .status-error { color: #b3261e; font-weight: bold; } .status-running { color: #8a6d00; }
figure { display: inline-block; margin: 8px 12px 8px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; image-rendering: pixelated; }
figcaption { font-size: 12px; color: #555; max-width: 820px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
"""

SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var asc = !th.classList.contains('asc');
      Array.prototype.forEach.call(heads, function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        var raw = cell.getAttribute('data-sort');
        var text = raw !== null ? raw : cell.textContent;
        var num = parseFloat(text);
        return isNaN(num) ? text : num;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
