"""The typed, validated configuration of raysweep: one schema for every command.

Every command takes Hydra-style ``key=value`` overrides of this schema (``data.sigma=3.5``).
The dotted names are the public interface; later stages add keys, they never rename them.
Each section validates itself in ``__post_init__`` so that an invalid value is reported, in one
line naming the value and what is allowed, before any rendering or cluster work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from raysweep.config.errors import ConfigError

DATA_SOURCES = ("1p-frac", "fractaldb", "ofdb", "real")
DRAW_MODES = ("patch", "point")
FRAMINGS = ("bbox", "release")  # how the chaos game's points are fitted into the image (README: data.framing)
REPRESENTATIONS = ("rgb", "gray", "canny")
WARPS = ("affine", "elastic", "polynomial")
SCORE_DATASETS = ("cifar10", "cifar100", "imagefolder", "digits")
SCORE_MODES = ("finetune", "linear_probe")
SCORE_RECIPES = ("release", "vit")  # fine-tuning recipes (raysweep/score/recipes.py)
SEARCHES = ("grid", "random", "optuna")
SCHEDULERS = ("fifo", "asha")
LOGGERS = ("tensorboard", "mlflow", "wandb")  # experiment trackers of a sweep (CSV and JSON logs are always on)


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")


def _at_least(key: str, value, low) -> None:
    if value < low:
        raise ConfigError(f"{key}={value!r} is out of range; allowed: >= {low}")


def min_pad(draw: str, framing: str) -> int:
    """The smallest data.pad that keeps every drawn pixel inside the image: a centred 3x3 patch
    reaches 1 pixel past its point; the release's fit reaches one pixel further (to size - pad) and
    its patch sits one pixel off its point, reaching 3 pixels right of and above it."""
    if framing == "release":
        return 4 if draw == "patch" else 1
    return 1 if draw == "patch" else 0


def _open_interval(key: str, value: float, low: float, high: float) -> None:
    if not (low < value < high):  # also rejects NaN
        raise ConfigError(f"{key}={value!r} is out of range; allowed: the open interval ({low:g}, {high:g})")


@dataclass
class DataConfig:
    """What to render: the synthetic (or single real image) pre-training dataset."""

    source: str = "1p-frac"  # 1p-frac | fractaldb | ofdb | real
    sigma: float = 3.5  # sigma-factor of the base IFS, in (0, 3 * n_maps)
    sigma_jitter: float = 0.0  # draw sigma uniformly in [sigma - j, sigma + j] once (the release: 0.1)
    delta: float = 0.1  # LIEP perturbation strength, in (0, 1)
    L: int = 1000  # number of classes (perturbations for 1p-frac, categories for fractaldb/ofdb)
    n_maps: int = 2  # N, affine maps of the 1p-frac system
    n_maps_max: int = 7  # fractaldb/ofdb: N drawn per category from 2..n_maps_max
    size: int = 512  # rendered image side, pixels
    pad: int = 6  # margin around the fitted orbit, pixels
    iterations: int = 100_000  # chaos-game points per image
    draw: str = "patch"  # patch (3x3 random binary mask per point) | point
    gray: int = 127  # gray level of drawn pixels on black
    fixed_map_sequence: bool = True  # same map-choice sequence for every class (the release)
    materialize: bool = True  # false: render on the fly, streamed by Ray Data render actors into the Train
    # workers, never written to storage (deterministic by seed, epoch and index)
    fresh_instances: bool = False  # with materialize=false: fresh instances every epoch (new map-choice sequences
    # and patch masks; fractal sources)
    stream_actors: int = 1  # with materialize=false: render actors per Train worker
    framing: str = "bbox"  # bbox (the points' own bounding box) | release (the origin is fitted and drawn too,
    # patches one pixel off their points: the release's images; budget=paper)
    fill_threshold: float = 0.05  # minimum fraction of nonzero pixels of a valid image
    max_redraws: int = 100  # bounded rejection sampling for too-empty images
    instances: int = 1  # images per class (the release renders one)
    seed: int = 0
    # source=real: one real image; each class is one fixed random warp of strength delta
    image: Optional[str] = None  # a path, s3:// or http(s):// URL, or skimage:NAME (e.g. skimage:astronaut)
    representation: str = "gray"  # rgb | gray | canny
    warp: str = "affine"  # affine | elastic | polynomial

    def __post_init__(self) -> None:
        _choice("data.source", self.source, DATA_SOURCES)
        _at_least("data.n_maps", self.n_maps, 1)
        _at_least("data.n_maps_max", self.n_maps_max, 2)
        _open_interval("data.sigma", self.sigma, 0.0, 3.0 * self.n_maps)
        if not (0.0 <= self.sigma_jitter < self.sigma):
            raise ConfigError(
                f"data.sigma_jitter={self.sigma_jitter!r} is out of range; allowed: 0 <= jitter < data.sigma ({self.sigma:g})"
            )
        if self.sigma + self.sigma_jitter >= 3.0 * self.n_maps:
            raise ConfigError(
                f"data.sigma + data.sigma_jitter = {self.sigma + self.sigma_jitter:g} reaches 3N = {3 * self.n_maps}; "
                f"allowed: sigma + jitter < 3 * data.n_maps"
            )
        _open_interval("data.delta", self.delta, 0.0, 1.0)
        _at_least("data.L", self.L, 2)
        _at_least("data.size", self.size, 8)
        _at_least("data.pad", self.pad, 0)
        _choice("data.draw", self.draw, DRAW_MODES)
        _choice("data.framing", self.framing, FRAMINGS)
        _at_least("data.stream_actors", self.stream_actors, 1)
        if self.fresh_instances and self.materialize:
            raise ConfigError("data.fresh_instances=true needs data.materialize=false: fresh instances are rendered on the fly, "
                              "every epoch")
        low = min_pad(self.draw, self.framing)
        if self.pad < low:
            where = f"data.draw={self.draw}" + (f" and data.framing={self.framing}" if self.framing != "bbox" else "")
            raise ConfigError(f"data.pad={self.pad} is out of range; allowed with {where}: >= {low}")
        if self.size - 2 * self.pad < 2:
            raise ConfigError(
                f"data.pad={self.pad} leaves no room in data.size={self.size}; allowed: pad <= {(self.size - 2) // 2}"
            )
        _at_least("data.iterations", self.iterations, 1)
        if not (1 <= self.gray <= 255):
            raise ConfigError(f"data.gray={self.gray!r} is out of range; allowed: 1..255")
        if not (0.0 <= self.fill_threshold < 1.0):
            raise ConfigError(f"data.fill_threshold={self.fill_threshold!r} is out of range; allowed: [0, 1)")
        _at_least("data.max_redraws", self.max_redraws, 1)
        _at_least("data.instances", self.instances, 1)
        if self.source == "ofdb" and self.instances != 1:
            raise ConfigError(
                f"data.instances={self.instances} with data.source=ofdb; OFDB has one instance per category "
                f"(use data.source=fractaldb for more)"
            )
        _at_least("data.seed", self.seed, 0)
        _choice("data.representation", self.representation, REPRESENTATIONS)
        _choice("data.warp", self.warp, WARPS)
        if self.source == "real":
            if not self.image:
                raise ConfigError(
                    "data.source=real needs data.image: a path, an s3:// or http(s):// URL, or skimage:NAME (e.g. skimage:astronaut)"
                )
            if self.instances != 1:
                raise ConfigError(f"data.instances={self.instances} with data.source=real; allowed: 1 (each class is one fixed warp)")


@dataclass
class ModelConfig:
    """Which timm model to pre-train and score."""

    name: str = "vit_tiny_patch16_224"  # any timm model name
    img_size: int = 224  # input resolution (the crop size of the augmentation)
    patch_size: int = 16  # ViTs only
    depth: Optional[int] = None  # ViTs: override the number of blocks
    embed_dim: Optional[int] = None  # ViTs: override the width
    num_heads: Optional[int] = None  # ViTs: override the heads
    drop_path: float = 0.1

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("model.name is empty; give a timm model name, e.g. vit_tiny_patch16_224")
        _at_least("model.img_size", self.img_size, 8)
        _at_least("model.patch_size", self.patch_size, 1)
        for key in ("depth", "embed_dim", "num_heads"):
            if getattr(self, key) is not None:
                _at_least(f"model.{key}", getattr(self, key), 1)
        if self.embed_dim is not None and self.num_heads is not None and self.embed_dim % self.num_heads:
            raise ConfigError(f"model.embed_dim={self.embed_dim} is not divisible by model.num_heads={self.num_heads}")
        if not (0.0 <= self.drop_path < 1.0):
            raise ConfigError(f"model.drop_path={self.drop_path!r} is out of range; allowed: [0, 1)")


@dataclass
class PretrainConfig:
    """LPCE pre-training: the release's recipe (method page §5) is the default."""

    steps: int = 312_500  # optimizer steps (the release: 80,000 epochs of 1,000 images at batch 256)
    batch_size: int = 256  # global batch, whatever the worker count
    workers: int = 1  # Ray Train workers (one per GPU when there are GPUs)
    use_gpu: Optional[bool] = None  # each Train worker asks for one GPU; None: when the cluster can provide
    # GPUs (this machine's, or a node type's the autoscaler may launch); budget=paper sets true
    cpus_per_worker: Optional[float] = None  # CPUs each Train worker asks for (its torch threads); None: on
    # the embedded default an even share of this machine's CPUs, on a cluster 1
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    in_memory_gb: float = 4.0  # a rendered dataset up to this size (decoded) is held in each worker's memory
    # (the fastest for 1p-frac's L images); a larger one is streamed from its shards by Ray Data
    lr: float = 1.0e-3  # AdamW learning rate per 512 images of batch (scaled by batch_size / 512)
    min_lr: float = 1.0e-5  # cosine floor, per 512
    warmup_lr: float = 1.0e-6  # warm-up start, per 512
    warmup_epochs: float = 5.0  # in passes over the dataset
    weight_decay: float = 0.05
    # augmentation (timm semantics)
    crop_scale_min: float = 0.08  # RandomResizedCrop scale (min, 1.0), ratio (3/4, 4/3)
    hflip: float = 0.5
    vflip: float = 0.5
    randaugment: str = "rand-m9-mstd0.5-inc1"  # '' for none
    color_jitter: float = 0.4  # as in timm: only applied when randaugment is off
    reprob: float = 0.5  # random erasing probability
    mixup: float = 0.8  # alpha; 0 turns it off
    cutmix: float = 1.0  # alpha; 0 turns it off
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    smoothing: float = 0.1
    # bookkeeping
    report_every: int = 50  # steps between reported metrics
    checkpoint_every: int = 1000  # steps between checkpoints
    keep_checkpoints: int = 3  # keep the last K
    max_failures: int = 3  # worker failures survived (restart from the latest checkpoint)

    def __post_init__(self) -> None:
        _at_least("pretrain.steps", self.steps, 0)
        _at_least("pretrain.batch_size", self.batch_size, 1)
        _at_least("pretrain.workers", self.workers, 1)
        if self.cpus_per_worker is not None and not self.cpus_per_worker > 0:
            raise ConfigError(f"pretrain.cpus_per_worker={self.cpus_per_worker!r} is out of range; allowed: > 0 (or null)")
        if self.batch_size % self.workers:
            raise ConfigError(
                f"pretrain.batch_size={self.batch_size} is not divisible by pretrain.workers={self.workers}; "
                f"the global batch is split evenly across workers"
            )
        _choice("pretrain.precision", self.precision, ("auto", "bf16", "fp32"))
        if not self.in_memory_gb >= 0:
            raise ConfigError(f"pretrain.in_memory_gb={self.in_memory_gb!r} is out of range; allowed: >= 0 (0: always stream)")
        for key in ("lr", "min_lr", "warmup_lr"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"pretrain.{key}={getattr(self, key)!r} is out of range; allowed: > 0")
        _at_least("pretrain.warmup_epochs", self.warmup_epochs, 0)
        _at_least("pretrain.weight_decay", self.weight_decay, 0)
        _open_interval("pretrain.crop_scale_min", self.crop_scale_min, 0.0, 1.0 + 1e-9)
        for key in ("hflip", "vflip", "reprob", "mix_prob", "mix_switch_prob", "smoothing"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"pretrain.{key}={getattr(self, key)!r} is out of range; allowed: [0, 1]")
        for key in ("color_jitter", "mixup", "cutmix"):
            _at_least(f"pretrain.{key}", getattr(self, key), 0)
        if self.randaugment and not self.randaugment.startswith("rand"):
            raise ConfigError(f"pretrain.randaugment={self.randaugment!r} is not a RandAugment spec like 'rand-m9-mstd0.5-inc1' (or '')")
        _at_least("pretrain.report_every", self.report_every, 1)
        _at_least("pretrain.checkpoint_every", self.checkpoint_every, 1)
        _at_least("pretrain.keep_checkpoints", self.keep_checkpoints, 1)
        _at_least("pretrain.max_failures", self.max_failures, -1)


@dataclass
class VitRecipeConfig:
    """``score.recipe=vit``: the field's ImageNet fine-tuning of ViTs (DeiT's augmentation, BEiT/MAE's
    AdamW with layer-wise lr decay). Defaults: MAE's ViT-B fine-tuning. Drop-path is ``model.drop_path``;
    the crop (``score.crop_scale_min``), flip (``score.hflip``) and label smoothing (``score.smoothing``)
    are the release recipe's keys, shared."""

    lr: float = 1.0e-3  # AdamW peak lr per 512 images of batch (MAE: base lr 5e-4 per 256); cosine to 0
    weight_decay: float = 0.05  # not on norms, biases, pos_embed, cls_token (timm's parameter groups)
    layer_decay: Optional[float] = 0.65  # layer-wise lr decay (BEiT/MAE: 0.65 for ViT-B); null: off. Used for
    # models whose layers timm can group (group_matcher), left out for the others
    warmup_epochs: float = 5.0  # linear warm-up from 0
    randaugment: str = "rand-m9-mstd0.5-inc1"  # '' for none
    reprob: float = 0.25  # random erasing probability
    mixup: float = 0.8  # alpha; 0 turns it off
    cutmix: float = 1.0  # alpha; 0 turns it off
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"score.vit.lr={self.lr!r} is out of range; allowed: > 0")
        _at_least("score.vit.weight_decay", self.weight_decay, 0)
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"score.vit.layer_decay={self.layer_decay!r} is out of range; allowed: (0, 1] (or null: off)")
        _at_least("score.vit.warmup_epochs", self.warmup_epochs, 0)
        if self.randaugment and not self.randaugment.startswith("rand"):
            raise ConfigError(f"score.vit.randaugment={self.randaugment!r} is not a RandAugment spec like "
                              f"'rand-m9-mstd0.5-inc1' (or '')")
        for key in ("reprob", "mix_prob", "mix_switch_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"score.vit.{key}={getattr(self, key)!r} is out of range; allowed: [0, 1]")
        for key in ("mixup", "cutmix"):
            _at_least(f"score.vit.{key}", getattr(self, key), 0)


@dataclass
class ScoreConfig:
    """Downstream scoring of a pre-trained checkpoint."""

    dataset: str = "cifar10"  # cifar10 | cifar100 | imagefolder | digits
    data_root: Optional[str] = None  # local directory or s3:// (None: download CIFAR, for users online)
    mode: str = "finetune"  # finetune | linear_probe
    probe_blocks: int = 1  # linear_probe: features after the first k blocks (ViTs) / feature stages
    # (CNNs, in timm's feature_info order: for ResNets 1 = the stem, 2..5 = stages 1..4)
    extra_probes: List[int] = field(default_factory=list)  # also linear-probe these blocks/stages of the
    # pre-trained (or, for scratch, random-init) backbone before the main scoring: reported as probe{k}_top1
    shots: int = 0  # train the scoring (and the extra probes) on this many images per class of the downstream
    # training set, a draw fixed by the seed (few-shot); 0: all of it. The test split is always whole
    epochs: int = 1000
    checkpoint: Optional[str] = None  # a checkpoint URI, or none for training from scratch
    recipe: str = "release"  # fine-tuning recipe: release (SGD: score.lr, momentum, weight_decay, warmup_epochs)
    # | vit (AdamW, layer decay, RandAugment, Mixup/CutMix, random erasing: score.vit.*)
    precision: str = "auto"  # fine-tuning and evaluation: auto (bf16 autocast on GPU, fp32 on CPU) | bf16 | fp32
    vit: VitRecipeConfig = field(default_factory=VitRecipeConfig)
    # the release's fine-tuning recipe (method page §6)
    batch_size: int = 768
    lr: float = 0.01  # SGD, per 512 images of batch (scaled by batch_size / 512)
    probe_lr: float = 0.1  # linear probe (SGD on standardised frozen features), per 512
    momentum: float = 0.9
    weight_decay: float = 1.0e-4
    warmup_epochs: float = 10.0
    crop_scale_min: float = 0.08  # fine-tuning augmentation: RandomResizedCrop + horizontal flip
    hflip: float = 0.5
    smoothing: float = 0.1
    eval_every: int = 1  # epochs between evaluations on the held-out split
    workers: int = 1
    max_failures: int = 3
    # an ImageFolder up to this size (decoded) is held in memory; a larger one (ImageNet) is streamed
    # through Ray Data every epoch (read, decoded and resized by CPU tasks)
    in_memory_gb: float = 4.0

    def __post_init__(self) -> None:
        _choice("score.dataset", self.dataset, SCORE_DATASETS)
        if not self.in_memory_gb >= 0:
            raise ConfigError(f"score.in_memory_gb={self.in_memory_gb!r} is out of range; allowed: >= 0 (0: always stream an ImageFolder)")
        _choice("score.mode", self.mode, SCORE_MODES)
        _choice("score.recipe", self.recipe, SCORE_RECIPES)
        _choice("score.precision", self.precision, ("auto", "bf16", "fp32"))
        _at_least("score.probe_blocks", self.probe_blocks, 1)
        for k in self.extra_probes:
            _at_least("score.extra_probes[]", k, 1)
        _at_least("score.shots", self.shots, 0)
        _at_least("score.epochs", self.epochs, 0)
        _at_least("score.batch_size", self.batch_size, 1)
        _at_least("score.workers", self.workers, 1)
        if self.batch_size % self.workers:
            raise ConfigError(f"score.batch_size={self.batch_size} is not divisible by score.workers={self.workers}")
        for key in ("lr", "probe_lr"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"score.{key}={getattr(self, key)!r} is out of range; allowed: > 0")
        for key in ("momentum", "hflip", "smoothing"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"score.{key}={getattr(self, key)!r} is out of range; allowed: [0, 1]")
        _at_least("score.weight_decay", self.weight_decay, 0)
        _at_least("score.warmup_epochs", self.warmup_epochs, 0)
        _open_interval("score.crop_scale_min", self.crop_scale_min, 0.0, 1.0 + 1e-9)
        _at_least("score.eval_every", self.eval_every, 1)
        if isinstance(self.data_root, str) and self.data_root.lower() in ("none", "null", ""):
            self.data_root = None
        if isinstance(self.checkpoint, str) and self.checkpoint.lower() in ("none", "null", "scratch", ""):
            self.checkpoint = None


@dataclass
class SweepConfig:
    """How ``python -m raysweep.tune`` searches: algorithm, scheduler, repeats, resources."""

    search: str = "grid"  # grid | random | optuna (TPE)
    scheduler: str = "fifo"  # fifo | asha (stops trials early on the quick probe during pre-training)
    num_samples: int = 1  # random/optuna: configurations to try (grid: every point once)
    seeds: List[int] = field(default_factory=lambda: [0])  # repeats of every configuration (mean ± std)
    metric: str = "top1"  # the downstream metric the search maximises
    max_concurrent_trials: int = 1
    trial_cpus: float = 1.0  # the Tune trial (a Ray Train driver) itself; its Train workers ask for their own
    probe_every: int = 0  # pre-training steps between quick downstream probes (ASHA's signal); 0: none
    probe_train: int = 1000  # quick probe: downstream training images used
    probe_test: int = 500  # quick probe: held-out images used
    grace_period: int = 0  # asha: steps before a trial may be stopped (0: two probe intervals)
    reduction_factor: int = 2  # asha
    # experiment trackers, one run per trial (raysweep/tune/trackers.py); credentials only from their environment variables
    loggers: List[str] = field(default_factory=lambda: ["tensorboard"])  # tensorboard | mlflow | wandb
    mlflow_tracking_uri: Optional[str] = None  # None: MLFLOW_TRACKING_URI, else MLflow's default (sqlite:///mlflow.db)
    mlflow_experiment: Optional[str] = None  # None: MLFLOW_EXPERIMENT_NAME, else the sweep's name
    wandb_project: Optional[str] = None  # None: WANDB_PROJECT, else the sweep's name

    def __post_init__(self) -> None:
        _choice("sweep.search", self.search, SEARCHES)
        _choice("sweep.scheduler", self.scheduler, SCHEDULERS)
        _at_least("sweep.num_samples", self.num_samples, 1)
        if not self.seeds:
            raise ConfigError("sweep.seeds is empty; give at least one seed, e.g. [0]")
        for seed in self.seeds:
            _at_least("sweep.seeds[]", seed, 0)
        _at_least("sweep.max_concurrent_trials", self.max_concurrent_trials, 1)
        if not self.trial_cpus > 0:  # Tune cannot place a trial that asks for nothing
            raise ConfigError(f"sweep.trial_cpus={self.trial_cpus!r} is out of range; allowed: > 0 (fractions such as 0.1 too)")
        _at_least("sweep.probe_every", self.probe_every, 0)
        _at_least("sweep.probe_train", self.probe_train, 10)
        _at_least("sweep.probe_test", self.probe_test, 10)
        _at_least("sweep.grace_period", self.grace_period, 0)
        _at_least("sweep.reduction_factor", self.reduction_factor, 2)
        if self.scheduler == "asha" and self.probe_every == 0:
            raise ConfigError("sweep.scheduler=asha needs sweep.probe_every > 0: ASHA stops trials on the quick probe")
        for name in self.loggers:
            if name not in LOGGERS:
                raise ConfigError(f"sweep.loggers={list(self.loggers)!r}: {name!r} is not allowed; choose from: "
                                  f"{', '.join(LOGGERS)} (CSV and JSON logs are always written)")
        if self.mlflow_tracking_uri is not None:
            from urllib.parse import urlsplit

            if not self.mlflow_tracking_uri:
                raise ConfigError("sweep.mlflow_tracking_uri is empty; give a URI (e.g. sqlite:///mlflow.db, http://HOST:5000) "
                                  "or null")
            if "@" in urlsplit(self.mlflow_tracking_uri).netloc:  # said without the URI: it holds a credential
                raise ConfigError("sweep.mlflow_tracking_uri holds credentials (user:password@), which would be written with the "
                                  "sweep; set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN, or put "
                                  "the whole URI in MLFLOW_TRACKING_URI")
        for key in ("mlflow_experiment", "wandb_project"):
            if getattr(self, key) == "":
                raise ConfigError(f"sweep.{key} is empty; give a name or null (the sweep's name)")


@dataclass
class Config:
    """The whole run: data -> model -> pretrain -> score, plus where results go."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    storage: str = "runs"  # local directory or s3:// URI
    render_resource: Optional[str] = None  # a custom Ray resource each render actor asks one unit of, so that
    # rendering lands on the nodes advertising it (cluster/cluster.yaml's render nodes: render_resource=render)
    name: str = "default"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.storage:
            raise ConfigError("storage is empty; give a local directory or an s3:// URI")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name={self.name!r} is not allowed; use a non-empty name without '/'")
        _at_least("seed", self.seed, 0)
        if self.render_resource is not None and (not self.render_resource or self.render_resource in ("CPU", "GPU", "memory")):
            raise ConfigError(f"render_resource={self.render_resource!r} is not allowed; give a custom resource name, e.g. render")
