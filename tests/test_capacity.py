"""Unit tests (no Ray): what a cluster can provide and what is refused, the Train workers'
resources, the identity of a pre-trained model, the store's atomicity, equal scoring shards, and
augmentation that never reads a tensor back to the host."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from raysweep.core import checkpoint
from raysweep.cluster import Capacity, NodeType, check_fits, check_storage, node_types_of
from raysweep.config import ConfigError, load_config
from raysweep.cluster import Resources, resources_for
from raysweep.score.loop import shard

ROOT = Path(__file__).resolve().parents[1]

FIXED = Capacity(where="a fixed cluster", nodes=[{"CPU": 8.0}, {"CPU": 4.0, "GPU": 1.0}], hosts={"10.0.0.1", "10.0.0.2"})
FROM_ZERO = Capacity(where="an autoscaling cluster", nodes=[{"CPU": 8.0}], hosts={"10.0.0.1"},
                     node_types=[NodeType("head", {"CPU": 8.0}, 1, 1), NodeType("gpu", {"CPU": 4.0, "GPU": 1.0}, 8),
                                 NodeType("render", {"CPU": 32.0, "render": 32.0}, 4)])
LAPTOP = Capacity(where="this machine", nodes=[{"CPU": 2.0}], hosts={"localhost"}, local=True)


def test_a_request_some_node_type_can_provide_is_accepted_even_with_no_such_node_yet():
    check_fits(FROM_ZERO, "worker", {"CPU": 4.0, "GPU": 1.0}, count=8)  # the autoscaler launches 8 GPU nodes
    check_fits(FROM_ZERO, "render actor", {"CPU": 1.0, "render": 1.0})
    assert FROM_ZERO.most("GPU") == 8 and FROM_ZERO.can_grow()
    up = Capacity(where="", nodes=[{"CPU": 8.0}, {"CPU": 4.0, "GPU": 1.0}], hosts={"a", "b"}, node_types=FROM_ZERO.node_types)
    assert up.most("GPU") == 8, "a GPU node that is up is one of the 8 its node type allows, not a ninth"


@pytest.mark.parametrize("capacity,bundle,count,message", [
    (FROM_ZERO, {"CPU": 8.0, "GPU": 1.0}, 1, "asks for {CPU: 8, GPU: 1}, which no node of an autoscaling cluster"),
    (FROM_ZERO, {"CPU": 1.0, "GPU": 1.0}, 9, "asks for 9 x {CPU: 1, GPU: 1} = 9 GPU in all, but an autoscaling cluster"),
    (FROM_ZERO, {"CPU": 1.0, "tpu": 1.0}, 1, "{CPU: 1, tpu: 1}, which no node"),
    (FIXED, {"CPU": 1.0, "GPU": 1.0}, 2, "= 2 GPU in all, but a fixed cluster: nodes {CPU: 8}, {CPU: 4, GPU: 1}"),
    (LAPTOP, {"CPU": 1.0, "GPU": 1.0}, 1, "which no node of this machine: nodes {CPU: 2} can provide"),
])
def test_a_request_nothing_can_ever_provide_is_one_line_naming_the_cluster(capacity, bundle, count, message):
    with pytest.raises(ConfigError) as e:
        check_fits(capacity, "each Train worker", bundle, count=count)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_local_storage_is_refused_where_nodes_are_or_may_be_on_several_machines():
    with pytest.raises(ConfigError, match="is a local directory, but its nodes run on 2 machines"):
        check_storage(FIXED, "/data/runs")
    with pytest.raises(ConfigError, match="is a local directory, but its autoscaler may add nodes on other machines"):
        check_storage(FROM_ZERO, "runs")
    check_storage(FROM_ZERO, "s3://bucket/runs")
    check_storage(LAPTOP, "runs")
    check_storage(Capacity(where="Cluster()", nodes=[{"CPU": 1.0}, {"CPU": 2.0}], hosts={"127.0.0.1"}), "runs")  # one machine


def test_cluster_yaml_node_types_are_what_the_autoscaler_may_launch():
    types = {t["name"]: t for t in node_types_of(yaml.safe_load((ROOT / "cluster" / "cluster.yaml").read_text()))}
    assert types["head"]["min_count"] == types["head"]["max_count"] == 1
    assert types["gpu"]["resources"] == {"CPU": 4.0, "GPU": 1.0} and types["gpu"]["max_count"] == 8
    assert types["render"]["resources"]["render"] == 32 and types["render"]["min_count"] == 0


def test_train_workers_ask_for_what_the_config_says_else_what_the_cluster_can_provide():
    paper = load_config(["pretrain.use_gpu=true", "pretrain.cpus_per_worker=4", "pretrain.workers=2"])
    assert resources_for(paper, 2, FIXED).bundle == {"CPU": 4.0, "GPU": 1.0}, "the config decides, whatever the cluster"
    auto = load_config([])
    assert resources_for(auto, 1, FROM_ZERO).use_gpu, "no GPU node is up yet, but a node type has GPUs"
    assert not resources_for(auto, 1, LAPTOP).use_gpu
    assert resources_for(auto, 1, FROM_ZERO).cpus_per_worker == 1.0, "on a cluster: 1 CPU unless configured"
    assert resources_for(auto, 1, LAPTOP).cpus_per_worker == 2.0, "the embedded default: this machine's CPUs"
    assert resources_for(auto, 1, LAPTOP, drivers_cpus=1.0).cpus_per_worker == 1.0, "minus the sweep's trial drivers"
    assert resources_for(auto, 2, LAPTOP, drivers_cpus=1.0).cpus_per_worker == 0.5
    assert Resources(1, False, 3.0).threads == 3 and Resources(2, False, 0.5).threads == 1, "torch threads = CPUs given"


def test_a_pretrained_models_key_is_what_determines_its_weights():
    base = load_config([])
    key = checkpoint.pretrain_key(base, "spec", "gpu")
    for bookkeeping in (["pretrain.report_every=7"], ["pretrain.checkpoint_every=3"], ["pretrain.keep_checkpoints=9"],
                        ["pretrain.max_failures=0"], ["pretrain.cpus_per_worker=8"], ["score.lr=0.5"], ["name=x"],
                        ["sweep.probe_every=9"], ["storage=elsewhere"]):
        assert checkpoint.pretrain_key(load_config(bookkeeping), "spec", "gpu") == key, bookkeeping
    for recipe in (["pretrain.lr=0.002"], ["pretrain.steps=10"], ["pretrain.workers=2"], ["model.drop_path=0.2"], ["seed=1"]):
        assert checkpoint.pretrain_key(load_config(recipe), "spec", "gpu") != key, recipe
    assert checkpoint.pretrain_key(base, "other spec", "gpu") != key
    assert checkpoint.pretrain_key(base, "spec", "cpu") != key


def test_the_store_holds_a_whole_model_or_none(tmp_path):
    model = torch.nn.Linear(3, 2)
    src = checkpoint.save(str(tmp_path / "src"), model, {"phase": "pretrain", "step": 5})
    uri = str(tmp_path / "store" / "pretrain" / "abc")
    assert not checkpoint.is_complete(uri)
    checkpoint.publish(src, uri)
    assert checkpoint.is_complete(uri) and checkpoint.read_state(uri)["step"] == 5
    assert sorted(p.name for p in Path(uri).iterdir()) == ["model.pt", "state.json"], "no optimizer state in the store"
    other = checkpoint.save(str(tmp_path / "other"), torch.nn.Linear(3, 2), {"phase": "pretrain", "step": 6})
    checkpoint.publish(other, uri)  # published already: the first stays
    assert checkpoint.read_state(uri)["step"] == 5
    assert torch.equal(checkpoint.read_weights(uri)["weight"], model.weight)
    assert not list((tmp_path / "store" / "pretrain").glob(".*tmp*")), "no temporary directory left behind"


@pytest.mark.parametrize("n,world", [(10, 3), (7, 2), (8, 4), (1, 2)])
def test_every_rank_gets_an_equal_share_and_all_samples_are_covered(n, world):
    shares = [shard(n, r, world) for r in range(world)]
    assert len({len(s) for s in shares}) == 1, "equal step counts on every rank"
    assert set(np.concatenate(shares)) == set(range(n))


def test_augmentation_never_reads_a_tensor_back_to_the_host(monkeypatch):
    """A host read (``.item()``, ``bool(tensor)``, ``.nonzero()``, ``.tolist()``) waits for the
    device's queue to drain; the full recipe, RandAugment included, makes none."""
    from raysweep.core.augment import for_pretraining

    aug = for_pretraining(load_config([]).pretrain, 32, num_classes=10)
    aug.sync_free = True  # what it does on an accelerator (on the CPU, reading a tensor costs nothing)
    images = torch.randint(0, 255, (16, 1, 64, 64), dtype=torch.uint8)

    def host_read(*args, **kwargs):
        raise AssertionError("augmentation read a tensor back to the host")

    for name in ("__bool__", "item", "nonzero", "tolist", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    x, target = aug(images, torch.arange(16) % 10, torch.Generator().manual_seed(0))
    assert x.shape == (16, 3, 32, 32) and target.shape == (16, 10)


def test_each_randaugment_op_applies_only_to_the_samples_that_drew_it():
    """The batched photometric step, sync-free (accelerators) or on the drawn samples only (CPU),
    equals applying each sample's drawn ops one by one."""
    from raysweep.core.augment import GEOMETRIC, OPS, BatchAugment

    aug = BatchAugment(16, 10, crop_scale_min=1.0, hflip=0.0, randaugment="rand-m9-mstd0.5-inc1", smoothing=0.0)
    g = torch.Generator().manual_seed(1)
    b = 64
    x = torch.rand(b, 3, 16, 16, generator=g)
    plan = aug._draw_randaugment(b, g, torch.device("cpu"))
    aug.sync_free = True
    batched = aug._apply_photometric(x, plan)
    aug.sync_free = False
    assert torch.equal(aug._apply_photometric(x, plan), batched), "both ways give the same images"
    assert not torch.equal(batched, x), "some samples drew photometric ops"
    for i in range(b):
        one = x[i : i + 1]
        for op_idx, apply, level, sign in plan:
            op = OPS[int(op_idx[i])]
            if bool(apply[i]) and op not in GEOMETRIC:
                one = aug._photometric(op, one, level[i : i + 1], sign[i : i + 1])
        assert torch.allclose(batched[i : i + 1], one, atol=1e-6), i
