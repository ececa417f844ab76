"""``python -m raysweep.bench gpu [--json] [--tiny]``: everything only a GPU shows, in one command
that finishes in a few minutes on one GPU (goal: <= 8 minutes on one H100/H200, start-up included).

1. **LPCE pre-training, in-device input**: ViT-Tiny/224 with the release's full recipe (RandAugment,
   random erasing, Mixup/CutMix, label smoothing; the batched augmentation on the GPU) and bf16
   autocast, on 1p-frac L = 1,000 rendered at 512 px (the release's images), held on the device:
   images/s and ``data_wait_fraction`` of the loop's last report interval (warm: after the first).
2. **LPCE pre-training, streamed**: the same, with the images rendered on the fly by Ray Data render
   actors (``data.materialize=false``; one actor per CPU the machine has beyond two): is rendering
   fast enough to keep the GPU fed?
3. **Fine-tuning images/s**: the ``vit`` recipe (``score.recipe=vit``: AdamW with layer decay,
   RandAugment, Mixup/CutMix, random erasing, bf16) on ViT-Tiny/224, 1,000 classes, 256 px images
   cropped to 224: the training images of two epochs over their wall time (their two evaluations,
   of 256 images each, included).
4. **Ray Train overhead on the GPU**: the in-device pre-training loop bare in this process against
   the same loop under Ray Train with one GPU worker, each measured by the loop's own metrics over
   its last interval (start-up excluded alike): ``overhead = bare / ray - 1``.

Goals (one H100/H200): pre-training >= 10,000 images/s with the full recipe in bf16, and
``data_wait_fraction`` <= 0.05.

``--tiny`` runs the same code paths in seconds on the CPU (or whatever device there is): a 1-block
ViT at 32 px, a few steps of each. It proves the command works, not the figures. No part reads
``../shared``: the fine-tuning images are random pixels (throughput does not depend on them).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GOALS = {"pretrain_images_per_second": 10_000.0, "data_wait_fraction": 0.05}


@dataclass(frozen=True)
class Setting:
    model: tuple[str, ...]  # model.* overrides
    data: tuple[str, ...]  # data.* overrides of the 1p-frac dataset
    batch_size: int  # pre-training's global batch
    steps: int  # per pre-training measurement; reports at steps / 3 and every third after
    finetune_images: int
    finetune_size: int  # the fine-tuning images' side (random-resized-cropped to model.img_size)
    finetune_classes: int
    finetune_batch: int
    eval_images: int = 256


FULL = Setting(
    model=("model.name=vit_tiny_patch16_224", "model.img_size=224", "model.patch_size=16", "model.drop_path=0.1"),
    data=("data.L=1000", "data.size=512", "data.pad=6", "data.iterations=100000", "data.framing=release",
          "data.sigma_jitter=0.1"),
    batch_size=512, steps=300, finetune_images=8_192, finetune_size=256, finetune_classes=1000, finetune_batch=256,
)
TINY = Setting(
    model=("model.name=vit_tiny_patch16_224", "model.img_size=32", "model.patch_size=8", "model.depth=1",
           "model.embed_dim=32", "model.num_heads=2", "model.drop_path=0.1"),
    data=("data.L=8", "data.size=32", "data.pad=2", "data.iterations=2000"),
    batch_size=16, steps=6, finetune_images=64, finetune_size=40, finetune_classes=10, finetune_batch=16, eval_images=16,
)


def run(tiny: bool = False) -> dict:
    import torch

    from raysweep.runtime import ensure_ray, local_cpus

    start = time.perf_counter()
    setting = TINY if tiny else FULL
    cuda = torch.cuda.is_available() and os.environ.get("RAYSWEEP_DEVICE", "") != "cpu"
    device = "cuda" if cuda else "cpu"
    actors = 1 if tiny else max(1, local_cpus() - 2)
    ensure_ray()  # the embedded default, as the commands start it (streams and Ray Train need it)
    scratch = Path(tempfile.mkdtemp(prefix="raysweep-bench-gpu-"))
    try:
        cfg = _config(setting, scratch, cuda)
        in_device = _pretrain_in_device(cfg, device)
        streamed = _pretrain_streamed(cfg, device, actors)
        finetune = _finetune(cfg, setting, device)
        ray_train = _ray_train(cfg, in_device)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    bf16 = cfg.pretrain.precision == "bf16" or (cuda and cfg.pretrain.precision == "auto")
    result = {
        "benchmark": "gpu",
        "tiny": tiny,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "precision": "bf16" if bf16 else "fp32",
        "model": f"{cfg.model.name} img_size={cfg.model.img_size} patch_size={cfg.model.patch_size}"
                 + (f" depth={cfg.model.depth} embed_dim={cfg.model.embed_dim}" if tiny else ""),
        "batch_size": setting.batch_size,
        "steps": setting.steps,
        "pretrain_in_device": in_device,
        "pretrain_streamed": streamed,
        "finetune": finetune,
        "ray_train": ray_train,
        "goals": dict(GOALS),
        "goals_met": {
            "pretrain_images_per_second": in_device["images_per_second"] >= GOALS["pretrain_images_per_second"],
            "data_wait_fraction": in_device["data_wait_fraction"] <= GOALS["data_wait_fraction"],
            "data_wait_fraction_streamed": streamed["data_wait_fraction"] <= GOALS["data_wait_fraction"],
        },
        "goals_apply": cuda and not tiny,  # the goals are for the full setting on one H100/H200
    }
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


def _config(setting: Setting, scratch: Path, cuda: bool):
    from raysweep.config import load_config

    report = max(1, setting.steps // 3)
    return load_config([
        *setting.model, *setting.data, f"storage={scratch}", "name=bench-gpu",
        f"pretrain.batch_size={setting.batch_size}", f"pretrain.steps={setting.steps}", f"pretrain.report_every={report}",
        f"pretrain.checkpoint_every={setting.steps}", "pretrain.keep_checkpoints=1", f"pretrain.use_gpu={str(cuda).lower()}",
        "pretrain.cpus_per_worker=" + ("4" if cuda else "1"),
    ])


def _interval(reports: list[dict]) -> dict:
    last = reports[-1]
    return {"images_per_second": round(float(last["images_per_second"]), 1),
            "data_wait_fraction": round(float(last["data_wait_fraction"]), 4), "steps": int(last["step"])}


def _pretrain_in_device(cfg, device: str) -> dict:
    from raysweep.core.context import LocalContext
    from raysweep.dataset import load_arrays, materialize
    from raysweep.pretrain.loop import train

    images, labels = load_arrays(materialize(cfg.data, cfg.storage, progress=False, log=lambda m: None).uri)
    ctx = LocalContext(device)
    train(cfg, images, labels, cfg.data.L, ctx)
    return _interval(ctx.reports)


def _pretrain_streamed(cfg, device: str, actors: int) -> dict:
    from raysweep.config import to_dict
    from raysweep.core.context import LocalContext
    from raysweep.dataset.stream import StreamPlan, render_stream
    from raysweep.pretrain.loop import train

    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, materialize=False, stream_actors=actors))
    d = cfg.data
    plan = StreamPlan(images=d.L * d.instances, instances=d.instances, seed=cfg.seed, fresh=d.fresh_instances,
                      global_batch=cfg.pretrain.batch_size, world=1, rank=0)
    data = to_dict(cfg)["data"]
    ctx = LocalContext(device)
    train(cfg, None, None, d.L, ctx, epoch_images=plan.images,
          stream=lambda first: render_stream(data, plan, first, cfg.pretrain.steps, actors))
    return {**_interval(ctx.reports), "render_actors": actors}


def _finetune(cfg, setting: Setting, device: str) -> dict:
    import numpy as np
    import torch

    from raysweep.core.context import LocalContext
    from raysweep.models import create_model
    from raysweep.score.datasets import Downstream, Split
    from raysweep.score.loop import finetune

    rng = np.random.default_rng(0)
    n, side, classes = setting.finetune_images, setting.finetune_size, setting.finetune_classes

    def split(count: int) -> Split:
        return Split(rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8),
                     rng.integers(0, classes, count).astype(np.int64))

    data = Downstream("random", split(n), split(setting.eval_images), classes, [str(c) for c in range(classes)])
    cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, recipe="vit", epochs=3, eval_every=1,
                                                             batch_size=setting.finetune_batch))
    torch.manual_seed(0)
    stamps: list[float] = []
    finetune(cfg, create_model(cfg.model, classes), data, LocalContext(device),
             report=lambda metrics, payload: stamps.append(time.perf_counter()))
    seconds = stamps[-1] - stamps[0]  # epochs 2 and 3: warm
    return {"images_per_second": round(2 * n / seconds, 1), "recipe": "vit", "images": n, "batch_size": setting.finetune_batch,
            "classes": classes}


def _ray_train(cfg, bare: dict) -> dict:
    from raysweep.core.checkpoint import read_state
    from raysweep.launch import pretrain

    start = time.perf_counter()
    state = read_state(pretrain(cfg, log=lambda m: None))  # the dataset rendered above, reused
    wall = time.perf_counter() - start
    ray_ips = float(state["metrics"]["images_per_second"])
    return {"bare_images_per_second": bare["images_per_second"], "ray_images_per_second": round(ray_ips, 1),
            "overhead": round(bare["images_per_second"] / ray_ips - 1.0, 3),
            "data_wait_fraction": round(float(state["metrics"]["data_wait_fraction"]), 4),
            "ray_run_wall_seconds": round(wall, 1)}


def format_table(r: dict) -> str:
    goal_ips, goal_wait = r["goals"]["pretrain_images_per_second"], r["goals"]["data_wait_fraction"]
    mark = (lambda ok: "met" if ok else "NOT met") if r["goals_apply"] else (lambda ok: "goal applies to the full run on a GPU")
    i, s, f, t = r["pretrain_in_device"], r["pretrain_streamed"], r["finetune"], r["ray_train"]
    return "\n".join([
        f"gpu: {r['device']} ({r['precision']}), {r['model']}, batch {r['batch_size']}, {r['steps']} steps per run"
        + (" [--tiny: code paths only]" if r["tiny"] else ""),
        f"  pre-training, in-device input  {i['images_per_second']:>10,.0f} images/s  (goal >= {goal_ips:,.0f}: "
        f"{mark(r['goals_met']['pretrain_images_per_second'])})",
        f"    data_wait_fraction           {i['data_wait_fraction']:>10.4f}  (goal <= {goal_wait}: {mark(r['goals_met']['data_wait_fraction'])})",
        f"  pre-training, streamed         {s['images_per_second']:>10,.0f} images/s  ({s['render_actors']} render actors)",
        f"    data_wait_fraction           {s['data_wait_fraction']:>10.4f}  (goal <= {goal_wait}: "
        f"{mark(r['goals_met']['data_wait_fraction_streamed'])})",
        f"  fine-tuning (vit recipe)       {f['images_per_second']:>10,.0f} images/s  ({f['classes']} classes, batch {f['batch_size']})",
        f"  Ray Train, 1 worker            {t['ray_images_per_second']:>10,.0f} images/s  "
        f"(bare {t['bare_images_per_second']:,.0f}; overhead {t['overhead']:.3f}; whole Ray run {t['ray_run_wall_seconds']} s)",
        f"wall: {r['wall_seconds']} s",
    ])
