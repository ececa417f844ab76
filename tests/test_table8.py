"""``experiments/vit_b_imagenet.yaml`` (study ``table8``): the small default through the real CLI on
an ImageFolder written from the CIFAR-10 subset (2 trials, offline), its results and report with
top-1, top-5 and the published reference; ``budget=paper`` is ViT-B/16 on 1p-frac with L = 21,000."""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

import pytest
import yaml

from test_tune import tune_cli

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "vit_b_imagenet.yaml"
TINY = ["data.L=8", "data.iterations=5000", "model.img_size=16", "model.depth=1", "model.embed_dim=32",
        "pretrain.steps=20", "pretrain.report_every=10", "pretrain.checkpoint_every=20", "score.epochs=1",
        "score.eval_every=1", "sweep.probe_every=10", "sweep.probe_train=200", "sweep.probe_test=100"]


def test_the_experiment_declares_table8_small_and_paper():
    from raysweep.experiment import load_experiment

    small = load_experiment(str(EXPERIMENT), [])
    assert small.study == "table8" and [small.variant_name(i) for i in range(2)] == ["scratch", "1p-frac"]
    cfg = small.cfg
    assert (cfg.score.dataset, cfg.score.recipe, cfg.score.mode) == ("imagefolder", "vit", "finetune")
    assert cfg.score.data_root.endswith("runs/data/cifar10-imagefolder"), "the README's path, written by its command"
    paper = load_experiment(str(EXPERIMENT), ["budget=paper"]).cfg
    assert paper.data.L == 21_000 and (paper.data.size, paper.data.framing, paper.data.sigma_jitter) == (512, "release", 0.1)
    assert paper.model.name == "vit_base_patch16_224" and (paper.model.img_size, paper.model.patch_size) == (224, 16)
    assert (paper.model.depth, paper.model.embed_dim, paper.model.num_heads) == (None, None, None), "ViT-B's own size"
    assert paper.score.recipe == "vit" and paper.score.vit.layer_decay == 0.65 and paper.score.data_root is None
    assert paper.pretrain.use_gpu and paper.pretrain.batch_size % paper.pretrain.workers == 0


@pytest.mark.slow
def test_the_small_default_without_its_imagefolder_is_a_one_line_error(tmp_path):
    proc = tune_cli(EXPERIMENT, f"storage={tmp_path / 'runs'}", f"score.data_root={tmp_path / 'nowhere'}", timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: score.data_root='{tmp_path / 'nowhere'}' does not exist; expected a directory "
                                   "with train/ and val/ (or test/), each with one subdirectory of images per class")
    proc = tune_cli(EXPERIMENT, f"storage={tmp_path / 'runs'}", "budget=paper", timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: score.dataset=imagefolder needs score.data_root"), proc.stderr


def test_the_small_default_through_the_cli_reports_top1_top5_and_the_published_reference(ray_cluster, cifar_imagefolder,
                                                                                         tmp_path):
    proc = tune_cli(EXPERIMENT, f"storage={tmp_path / 'runs'}", f"score.data_root={cifar_imagefolder}", *TINY)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir == tmp_path / "runs" / "sweeps" / "vit_b_imagenet"
    with open(run_dir / "results.csv") as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"scratch", "1p-frac"}
    for r in rows.values():
        assert r["status"] == "done" and 0.0 <= float(r["top1"]) <= float(r["top5"]) <= 100.0, r
    assert rows["1p-frac"]["pretrain_loss"] and not rows["scratch"]["pretrain_loss"]
    md = (run_dir / "results.md").read_text()
    assert "| variant | downstream top-1 (%), mean [95 % CI] | downstream top-5 (%), mean [95 % CI] |" in md
    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert best["config"]["score"]["recipe"] == "vit" and best["config"]["score"]["dataset"] == "imagefolder"

    page = (run_dir / "report.html").read_text()
    paper = re.search(r"<section id='paper'>(.*?)</section>", page, re.S).group(1)
    text = html.unescape(re.sub(r"<[^>]+>", " ", paper))
    assert "The paper's Table 8, beside ours" in text
    assert "published reference (Table 8): ViT-B/16, 1p-frac with L = 21,000" in text
    assert "above ImageNet-21k pre-training" in text, "the published reference beside our 1p-frac number"
    heads = [html.unescape(h) for h in re.findall(r"<th>([^<]*)</th>", paper.split("</thead>")[0])]
    assert heads[1:] == ["1p-frac", "scratch"]
    top1_row = re.search(r"<tr><th>ours:[^<]*top-1[^<]*</th>(.*?)</tr>", paper).group(1)
    top5_row = re.search(r"<tr class='top5'><th>ours: top-5 \(%\)</th>(.*?)</tr>", paper).group(1)
    for variant, column in (("1p-frac", 0), ("scratch", 1)):
        # one seed: the mean alone, with the mark of a trial at chance where there is one (this tiny run's
        # pre-training stays at chance: †)
        assert re.findall(r"<td>([^<]*)</td>", top1_row)[column].rstrip(" †‡") == f"{float(rows[variant]['top1']):.1f}"
        assert re.findall(r"<td>([^<]*)</td>", top5_row)[column] == f"{float(rows[variant]['top5']):.1f}"
    published_row = re.search(r"<tr class='published'>.*?</th>(.*?)</tr>", paper).group(1)
    assert re.findall(r"<td>([^<]*)</td>", published_row) == ["above ImageNet-21k pre-training", "—"]
    summary = re.search(r"<section id='summary'>(.*?)</section>", page, re.S).group(1)
    assert "downstream top-5 (%)" in summary
