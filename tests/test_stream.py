"""Data that is not held in memory: pre-training input rendered on the fly or read from shards
through Ray Data (deterministic by seed, epoch and index; resumable; split across workers), and
downstream ImageFolder trees streamed every epoch (locally and from S3), with images that do not
decode skipped and counted."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from raysweep.config import ConfigError, load_config, to_dict
from raysweep.dataset.stream import StreamPlan, input_source, render_stream, shard_plan, stream_cpus
from raysweep.score.datasets import FileSplit, load_downstream, write_imagefolder

ROOT = Path(__file__).resolve().parents[1]
FRACTALDB = ["data.source=fractaldb", "data.L=4", "data.instances=2", "data.size=32", "data.pad=2", "data.iterations=4000"]


# ---------------------------------------------------------------------------------- the plan (math)


def test_each_epoch_visits_every_image_once_and_workers_split_the_global_batch():
    one = StreamPlan(images=12, instances=3, seed=0, fresh=False, global_batch=4, world=1, rank=0)
    two = [dataclasses.replace(one, world=2, rank=r) for r in (0, 1)]
    items = [one.item(one.position(step, j)) for step in range(3) for j in range(4)]  # 3 steps x 4 = one epoch
    assert sorted(items) == [(label, i) for label in range(4) for i in range(3)]
    for step in range(6):  # two workers' batches together are the one worker's global batch, in order
        split = [p.item(p.position(step, j)) for p in two for j in range(2)]
        assert split == [one.item(one.position(step, j)) for j in range(4)]
    second_epoch = [one.item(one.position(step, j)) for step in range(3, 6) for j in range(4)]
    assert sorted(second_epoch) == sorted(items) and second_epoch != items  # a new order every epoch


def test_fresh_instances_are_new_every_epoch():
    plan = StreamPlan(images=6, instances=2, seed=1, fresh=True, global_batch=6, world=1, rank=0)
    first = {plan.item(plan.position(0, j)) for j in range(6)}
    second = {plan.item(plan.position(1, j)) for j in range(6)}
    assert {i for _, i in first} == {0, 1} and {i for _, i in second} == {2, 3}
    assert {label for label, _ in first} == {label for label, _ in second} == {0, 1, 2}


def test_shard_plans_split_an_epoch_between_workers_and_skip_what_a_resumed_run_has_seen():
    sizes = [5, 7, 4, 6]
    plans = [StreamPlan(images=22, instances=1, seed=3, fresh=False, global_batch=4, world=2, rank=r) for r in (0, 1)]
    shards = [[p["shard"] for p in shard_plan(sizes, plan, skip=0, count=11) if p["epoch"] == 0] for plan in plans]
    assert sorted(shards[0] + shards[1]) == [0, 1, 2, 3]  # each shard of the epoch read by one worker
    whole = shard_plan(sizes, plans[0], skip=0, count=20)
    later = shard_plan(sizes, plans[0], skip=6, count=14)
    rows = lambda plan: [(p["epoch"], p["shard"], r) for p in plan  # noqa: E731
                         for r in range(p["skip"], len(range(p["offset"], sizes[p["shard"]], p["stride"])))]
    assert rows(later) == rows(whole)[6:][: len(rows(later))]


@pytest.mark.parametrize("overrides,source", [
    ([], "memory"),  # 1p-frac's L images: held on the device
    (["pretrain.in_memory_gb=0"], "shards"),  # over the budget: streamed from the shards
    (["data.materialize=false"], "render"),  # rendered on the fly
])
def test_input_source_follows_the_memory_budget(overrides, source):
    cfg = load_config(overrides)
    assert input_source(cfg) == source
    assert stream_cpus(cfg, source, 2) == {"memory": 0, "shards": 2, "render": 2}[source]
    assert stream_cpus(load_config([*overrides, "score.dataset=imagefolder"]), source, 2, score=True) == max(1, stream_cpus(cfg, source, 2))


def test_fresh_instances_need_rendering_on_the_fly():
    with pytest.raises(ConfigError, match="data.fresh_instances"):
        load_config(["data.fresh_instances=true"])


# ------------------------------------------------------------------------- rendered on the fly (Ray)


def _take(data: dict, plan: StreamPlan, start: int, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(render_stream(data, plan, start, steps, actors=1))


def test_on_the_fly_stream_is_the_same_every_run_and_resumes_where_it_stopped(ray_cluster):
    data = to_dict(load_config(FRACTALDB))["data"]
    plan = StreamPlan(images=8, instances=2, seed=0, fresh=False, global_batch=4, world=1, rank=0)
    first = _take(data, plan, 0, 5)
    again = _take(data, plan, 0, 5)
    resumed = _take(data, plan, 3, 5)  # a run resumed from its checkpoint at step 3
    assert len(first) == 5 and all(x.shape == (4, 32, 32) and x.dtype == np.uint8 for x, _ in first)
    for (x, y), (x2, y2) in zip(first, again):
        assert np.array_equal(x, x2) and np.array_equal(y, y2)
    for (x, y), (x2, y2) in zip(first[3:], resumed):
        assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(first[0][0], first[1][0])


# ------------------------------------------------------------------------------ streamed downstream


VIT = ["model.img_size=16", "model.patch_size=4", "model.depth=2", "model.embed_dim=64", "model.num_heads=2", "model.drop_path=0"]
SCORE = ["score.dataset=imagefolder", "score.epochs=2", "score.batch_size=64", "score.lr=0.4", "score.warmup_epochs=1",
         "score.crop_scale_min=0.8"]


@pytest.fixture(scope="module")
def small_tree(cifar_imagefolder, tmp_path_factory) -> Path:
    """An ImageFolder of JPEGs of the CIFAR-10 subset: its first 600 training images, all 1,017 validation images."""
    from conftest import SHARED_CIFAR

    data = load_downstream("cifar10", str(SHARED_CIFAR))  # its order mixes the classes: the first 600 hold all ten
    return Path(write_imagefolder(data, tmp_path_factory.mktemp("small") / "tree", limit=600))


def test_streamed_imagefolder_fine_tunes_to_the_in_memory_result(ray_cluster, small_tree):
    from raysweep.score.loop import score

    cfg = load_config([*VIT, *SCORE, f"score.data_root={small_tree}"])
    memory = load_downstream("imagefolder", str(small_tree), in_memory_gb=4.0)
    streamed = load_downstream("imagefolder", str(small_tree), in_memory_gb=0.0)
    assert not memory.streamed and streamed.streamed and isinstance(streamed.test, FileSplit)
    a, b = score(cfg, memory), score(cfg, streamed)
    # the same pixels in the same order through the same steps: the same model, to float noise
    assert abs(a["top1"] - b["top1"]) <= 0.2 and abs(a["train_loss"] - b["train_loss"]) < 1e-3, (a, b)
    assert "skipped_train_images" not in b and "skipped_test_images" not in b


def test_streamed_imagefolder_from_s3_through_the_score_command(ray_cluster, small_tree, s3_bucket, tmp_path):
    import s3fs

    from raysweep.score.loop import score

    tree = tmp_path / "tree"  # 20 training and 10 validation images per class: S3 reads are the cost here
    for split, keep in (("train", 20), ("val", 10)):
        for folder in (small_tree / split).iterdir():
            (tree / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[:keep]:
                shutil.copy(f, tree / split / folder.name / f.name)
    fs = s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    fs.put(str(tree), f"{s3_bucket[5:]}/tree", recursive=True)
    local = load_config([*VIT, *SCORE, f"score.data_root={tree}", "score.in_memory_gb=4"])
    expected = score(local, load_downstream("imagefolder", str(tree)))
    proc = subprocess.run([sys.executable, "-m", "raysweep.score", *VIT, *SCORE, f"score.data_root={s3_bucket}/tree",
                           "score.in_memory_gb=0", f"storage={tmp_path / 'runs'}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert abs(result["top1"] - expected["top1"]) <= 0.2, (result, expected)


def test_images_that_do_not_decode_are_skipped_and_counted(ray_cluster, small_tree, tmp_path):
    from raysweep.score.loop import score

    tree = tmp_path / "tree"
    shutil.copytree(small_tree, tree)
    (tree / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG at all")
    (tree / "val" / "dog" / "truncated.jpg").write_bytes((small_tree / "val" / "dog").glob("*.jpg").__next__().read_bytes()[:50])
    (tree / "train" / "cat" / "README.txt").write_text("not an image of the dataset: ignored")
    cfg = load_config([*VIT, *SCORE, "score.epochs=1", f"score.data_root={tree}"])
    data = load_downstream("imagefolder", str(tree), in_memory_gb=0.0)
    assert len(data.train) == 601  # the .txt is not an image of the dataset
    result = score(cfg, data)
    assert result["skipped_train_images"] == 1 and result["skipped_test_images"] == 1, result
    with pytest.raises(ConfigError, match="cannot decode image .*broken.jpg"):  # in memory: one line, at load
        load_downstream("imagefolder", str(tree), in_memory_gb=4.0)


def test_an_empty_class_folder_is_one_line_before_training(tmp_path, small_tree):
    tree = tmp_path / "tree"
    shutil.copytree(small_tree, tree)
    (tree / "train" / "zebra").mkdir()
    (tree / "val" / "zebra").mkdir()
    with pytest.raises(ConfigError, match=r"class directory .*zebra has no images"):
        load_downstream("imagefolder", str(tree), in_memory_gb=0.0)
