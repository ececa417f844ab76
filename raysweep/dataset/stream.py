"""Pre-training data that is not held in memory, streamed through Ray Data into a Train worker:

- ``render``: a synthetic dataset rendered on the fly by Ray Data render actors (CPU, on the nodes
  advertising ``render_resource``), never written to storage (``data.materialize=false``);
- ``shards``: a rendered dataset too large for ``pretrain.in_memory_gb``, read and decoded from its
  Parquet shards by Ray Data tasks;
- downstream image files (:func:`file_stream`): an ImageFolder too large for ``score.in_memory_gb``,
  read, decoded and resized by Ray Data tasks, in the order the scoring loop asks for.

Every worker streams its own slice, in an order fixed by the seed (Ray Data with
``preserve_order``), so that a run, and a run resumed from a checkpoint at step ``s``, sees exactly
the same images: position ``j`` of worker ``r``'s batch of step ``k`` is the stream's global item
``g = k * global_batch + r * local_batch + j``. For ``render``, item ``g`` is image
``perm_e[g mod N]`` of epoch ``e = g div N`` (``perm_e`` a permutation of the dataset's N images
drawn from (seed, e)); with fresh instances, instance ``i`` of epoch ``e`` is rendered as instance
``e * instances + i`` (new map-choice sequence and patch masks every epoch). For ``shards``, each
epoch visits the shards in an order drawn from (seed, epoch), worker ``r`` taking every
``world``-th, each shard's rows in an order drawn from (seed, epoch, shard).

The training device receives uint8 batches; augmentation stays there.
"""

from __future__ import annotations

import functools
import io
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np

STREAM_SALT = 0x5EED_57E4  # separates stream permutations from every other random stream of a seed
ITEMS_PER_BLOCK = 256
RENDER_BATCH = 32
SEGMENT_ITEMS = 1 << 17  # items per Ray Data execution (a long run chains executions)
FILES_PER_BLOCK = 64  # downstream image files per block (and per decoding batch)
FILE_TASK_CPUS = 0.5  # a decoding task of image files waits on storage reads half the time


def input_source(cfg) -> str:
    """Where pre-training's images come from: ``render`` (on the fly, ``data.materialize=false``),
    ``memory`` (a rendered dataset within ``pretrain.in_memory_gb`` decoded: held on the device,
    the fastest for 1p-frac's L images) or ``shards`` (a larger one, streamed from its shards)."""
    d = cfg.data
    if not d.materialize:
        return "render"
    channels = 3 if d.source == "real" and d.representation == "rgb" else 1
    decoded = d.L * d.instances * d.size**2 * channels
    return "memory" if decoded <= cfg.pretrain.in_memory_gb * 2**30 else "shards"


def stream_cpus(cfg, source: str, workers: int, score: bool = False) -> float:
    """The CPUs a run's Ray Data streams ask for beside its Train workers: its render actors, or
    one decoding task per worker; scoring on an ImageFolder may stream it (a decoding task of
    ``FILE_TASK_CPUS`` per worker). Pre-training and scoring run one after the other: the larger of the two."""
    pretraining = {"render": workers * cfg.data.stream_actors, "shards": workers}.get(source, 0)
    return float(max(pretraining, workers * FILE_TASK_CPUS if score and cfg.score.dataset == "imagefolder" else 0))


@dataclass(frozen=True)
class StreamPlan:
    """Which image each position of a worker's stream holds."""

    images: int  # images per epoch (L x instances)
    instances: int
    seed: int
    fresh: bool
    global_batch: int
    world: int
    rank: int

    @property
    def local_batch(self) -> int:
        return self.global_batch // self.world

    def position(self, step: int, j: int) -> int:
        """The global item at position ``j`` of this worker's batch of ``step``."""
        return step * self.global_batch + self.rank * self.local_batch + j

    def item(self, g: int) -> tuple[int, int]:
        """(label, instance) of global item ``g`` of a rendered stream."""
        epoch, pos = divmod(g, self.images)
        label, instance = divmod(int(permutation(self.seed, epoch, self.images)[pos]), self.instances)
        return label, instance + (epoch * self.instances if self.fresh else 0)


@functools.lru_cache(maxsize=4)
def permutation(seed: int, epoch: int, n: int, *path: int) -> np.ndarray:
    """A permutation of ``range(n)`` drawn from (seed, epoch, path): the same everywhere, every time."""
    return np.random.default_rng(np.random.SeedSequence([STREAM_SALT, seed, epoch, *path])).permutation(n)


# ------------------------------------------------------------------------------- render on the fly


class StreamRenderer:
    """A Ray Data render actor: builds the source once, renders the items it is given."""

    def __init__(self, data: dict, plan: dict, start_step: int):
        from raysweep.config import DataConfig
        from raysweep.render.sources import create_source

        self.source = create_source(DataConfig(**data))
        self.plan = StreamPlan(**plan)
        self.start = start_step

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        plan, lb = self.plan, self.plan.local_batch
        images, labels = [], []
        for t in batch["id"]:
            step, j = divmod(int(t), lb)
            label, instance = plan.item(plan.position(self.start + step, j))
            images.append(self.source.render_instance(label, instance).image)
            labels.append(label)
        return {"image": np.stack(images), "label": np.asarray(labels, dtype=np.int64)}


def render_stream(data: dict, plan: StreamPlan, start_step: int, steps: int, actors: int,
                  render_resource: str | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """This worker's batches (uint8 images, int64 labels) for steps ``start_step .. steps - 1``,
    rendered by ``actors`` Ray Data actors (one CPU each, and one ``render_resource`` if given)."""
    import pyarrow as pa
    import ray.data

    def segment(first: int, count: int):
        # the ids as in-memory blocks: a read task (ray.data.range) would need a CPU of its own,
        # which a cluster whose CPUs the Train workers and render actors hold does not have
        items = ray.data.from_arrow([pa.table({"id": np.arange(lo, min(lo + ITEMS_PER_BLOCK, count))})
                                     for lo in range(0, count, ITEMS_PER_BLOCK)])
        return items.map_batches(
            StreamRenderer, fn_constructor_kwargs={"data": data, "plan": asdict(plan), "start_step": first},
            batch_size=RENDER_BATCH, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
            resources={render_resource: 1} if render_resource else None,
        )

    yield from _batches(segment, plan.local_batch, start_step, steps)


# -------------------------------------------------------------------------- shards over the budget


def shard_plan(sizes: list[int], plan: StreamPlan, skip: int, count: int) -> list[dict]:
    """The shards worker ``plan.rank`` reads to deliver ``count`` rows after skipping ``skip``:
    ``{"shard", "epoch", "skip", "offset", "stride"}`` in order. With at least as many shards as
    workers, each worker reads every ``world``-th shard of the epoch's order (whole shards skipped
    without reading them); with fewer, each reads them all and keeps every ``world``-th row."""
    split_rows = len(sizes) < plan.world
    offset, stride = (plan.rank, plan.world) if split_rows else (0, 1)
    out: list[dict] = []
    epoch, need = 0, skip + count
    while need > 0:
        order = permutation(plan.seed, epoch, len(sizes))
        for shard in (order if split_rows else order[plan.rank :: plan.world]):
            rows = len(range(offset, sizes[int(shard)], stride))
            if skip >= rows:
                skip -= rows
            else:
                out.append({"shard": int(shard), "epoch": epoch, "skip": skip, "offset": offset, "stride": stride})
                skip = 0
            need -= rows
            if need <= 0:
                break
        epoch += 1
    return out


def read_shards(batch: dict[str, np.ndarray], uris: list[str], seed: int) -> dict[str, np.ndarray]:
    """A Ray Data task: shards' images, decoded, each in the order its epoch draws."""
    import pyarrow.parquet as pq

    from raysweep.dataset.png import decode_png
    from raysweep.storage import read_bytes

    images, labels = [], []
    for shard, epoch, skip, offset, stride in zip(batch["shard"], batch["epoch"], batch["skip"], batch["offset"], batch["stride"]):
        table = pq.read_table(io.BytesIO(read_bytes(uris[int(shard)])), columns=["image", "label"])
        order = permutation(seed, int(epoch), len(table), int(shard))[int(offset) :: int(stride)][int(skip):]
        pngs, classes = table.column("image").to_pylist(), table.column("label").to_pylist()
        images += [decode_png(pngs[i]) for i in order]
        labels += [classes[i] for i in order]
    return {"image": np.stack(images), "label": np.asarray(labels, dtype=np.int64)}


def shard_stream(dataset_uri: str, plan: StreamPlan, start_step: int, steps: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """This worker's batches for steps ``start_step .. steps - 1`` from the dataset's shards."""
    import ray.data

    from raysweep.dataset.readers import manifest_of
    from raysweep.storage import join

    manifest = manifest_of(dataset_uri)
    uris = [join(dataset_uri, e["file"]) for e in manifest["shards"]]
    sizes = [int(e["rows"]) for e in manifest["shards"]]
    lb = plan.local_batch

    def segment(first: int, count: int):
        items = shard_plan(sizes, plan, skip=first * lb, count=count)
        return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            read_shards, fn_kwargs={"uris": uris, "seed": plan.seed}, batch_size=1, num_cpus=1)

    yield from _batches(segment, lb, start_step, steps)


# ------------------------------------------------------------------- downstream image files


def file_stream(split, indices: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The images ``split.uris[indices]`` of a :class:`~raysweep.score.datasets.FileSplit`, in that
    order, as (uint8 ``(n, H, W, 3)`` images, labels, valid) batches of ``batch_size`` (the last
    one shorter): read, decoded and resized by Ray Data tasks (``FILE_TASK_CPUS`` each), one execution per
    call (an epoch, an evaluation)."""
    import pyarrow as pa
    import ray.data

    from raysweep.score.datasets import decode_rows

    _ordered()
    uris = np.asarray(split.uris, dtype=object)[indices]
    labels = np.asarray(split.labels)[indices]
    blocks = [pa.table({"uri": pa.array(list(uris[lo : lo + FILES_PER_BLOCK]), pa.string()),
                        "label": labels[lo : lo + FILES_PER_BLOCK]}) for lo in range(0, len(uris), FILES_PER_BLOCK)]
    if not blocks:
        return
    data = ray.data.from_arrow(blocks).map_batches(decode_rows, fn_kwargs={"hw": tuple(split.hw), "root": split.root},
                                                   batch_size=FILES_PER_BLOCK, batch_format="numpy",
                                                   num_cpus=FILE_TASK_CPUS)
    for batch in data.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=4, drop_last=False):
        yield batch["image"], batch["label"], batch["valid"]


# ---------------------------------------------------------------------------------------- common


def _ordered() -> None:
    """This process's Ray Data executions keep the order of their input (resumable, the same every
    run) and print nothing per execution."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _batches(segment, local_batch: int, start_step: int, steps: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chain Ray Data executions of at most SEGMENT_ITEMS items into batches of ``local_batch``."""
    _ordered()
    per_segment = max(1, SEGMENT_ITEMS // local_batch)
    step = start_step
    while step < steps:
        n = min(per_segment, steps - step)
        taken = 0
        for batch in segment(step, n * local_batch).iter_batches(batch_size=local_batch, batch_format="numpy",
                                                                  prefetch_batches=4, drop_last=True):
            yield batch["image"], batch["label"]
            taken += 1
            if taken == n:
                break
        step += n
