"""``python -m raysweep.export CHECKPOINT out=DIR``: the weights of a raysweep checkpoint (a
pre-trained model of the store, ``{storage}/pretrain/{key}``, or any Ray Train checkpoint of a
run; local or ``s3://``) as timm loads them, with no raysweep installed. Writes into ``DIR``
(local or ``s3://``):

- ``model.safetensors``: the bare timm model's ``state_dict``;
- ``config.json``: timm's Hugging Face Hub format (``architecture``, ``num_classes``,
  ``num_features``, ``global_pool``, ``model_args``, ``pretrained_cfg``), plus ``raysweep``, a key
  timm ignores: the checkpoint's URI, phase and step, and what the weights were trained with (the
  dataset URI and data settings, the model, the pre-training recipe, the scoring settings of a
  fine-tuned model, the seed, the last metrics).

Load them with::

    cfg = json.load(open("DIR/config.json"))
    model = timm.create_model(cfg["architecture"], pretrained=True, num_classes=cfg["num_classes"],
                              pretrained_cfg_overlay=dict(cfg["pretrained_cfg"], file="DIR/model.safetensors"),
                              **cfg["model_args"])

or, for a local ``DIR``, ``timm.create_model("local-dir:DIR", pretrained=True)`` (uploaded to the
Hugging Face Hub: ``"hf-hub:USER/REPO"``). A fine-tuned model (a scoring
checkpoint) exports with its downstream head; a linear probe's checkpoint holds only the probe
layer and is refused. Prints ``DIR`` as its last line.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from raysweep.cli import arguments, main_guard, split_args
from raysweep.config import ConfigError, ModelConfig

WEIGHTS, CONFIG = "model.safetensors", "config.json"
#: raysweep feeds models [0, 1] images normalised with mean = std = 0.5 (score.loop.normalize),
#: resized whole (no centre crop), bicubic
MEAN = STD = (0.5, 0.5, 0.5)
USAGE = "usage: python -m raysweep.export CHECKPOINT out=DIR (each local or s3://)"


def export(checkpoint_uri: str, out: str) -> str:
    """Write ``model.safetensors`` and ``config.json`` of the checkpoint ``checkpoint_uri`` into
    ``out``; return ``out``. Everything is checked before anything is written; ``config.json`` is
    written last, so a directory with one holds a whole export."""
    import safetensors.torch

    from raysweep.core import checkpoint
    from raysweep.storage import atomic_write, check_writable, exists, join, remove

    state = checkpoint.read_state(checkpoint_uri, key="checkpoint")
    model_cfg = _model_config(state, checkpoint_uri)
    check_writable(out, key="out")
    weights = checkpoint.read_weights(checkpoint_uri, key="checkpoint")
    model = _load(model_cfg, state, weights, checkpoint_uri)
    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    config = hub_config(model, model_cfg, state, checkpoint_uri)
    if exists(join(out, CONFIG)):  # an older export: it is incomplete until the new config lands
        remove(join(out, CONFIG))
    atomic_write(join(out, WEIGHTS), safetensors.torch.save(tensors, metadata={"format": "pt"}))
    atomic_write(join(out, CONFIG), (json.dumps(config, indent=2) + "\n").encode())
    return out


def hub_config(model, model_cfg: ModelConfig, state: dict, checkpoint_uri: str) -> dict[str, Any]:
    """``config.json`` in the layout of timm's ``save_config_for_hf`` (timm.models._hub), describing
    these weights: the input size they were trained at and raysweep's preprocessing, not the
    registry's ImageNet defaults (timm's writer also copies the registry weights' tag and license,
    which say nothing about raysweep's weights, so they are left out)."""
    from raysweep.models import architecture_kwargs

    source = model.pretrained_cfg
    size = model_cfg.img_size
    pretrained_cfg = {
        "custom_load": False,
        "input_size": [3, size, size],
        "fixed_input_size": bool(source.get("fixed_input_size", False)),
        "interpolation": "bicubic",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": list(MEAN),
        "std": list(STD),
        "num_classes": model.num_classes,
        "pool_size": None,
        "first_conv": source.get("first_conv"),
        "classifier": source.get("classifier"),
    }
    config: dict[str, Any] = {"architecture": source["architecture"], "num_classes": model.num_classes,
                              "num_features": model.num_features}
    pool = getattr(model, "global_pool", None)
    pool = getattr(pool, "pool_type", pool)  # a CNN's pooling module, or a ViT's string
    if isinstance(pool, str) and pool:
        config["global_pool"] = pool
    config["model_args"] = architecture_kwargs(model_cfg)
    config["pretrained_cfg"] = pretrained_cfg
    config["raysweep"] = provenance(state, checkpoint_uri)
    return config


def provenance(state: dict, checkpoint_uri: str) -> dict[str, Any]:
    """What the weights are and what they were trained with."""
    trained = state["config"]
    phase = state.get("phase", "pretrain")
    record: dict[str, Any] = {"checkpoint": checkpoint_uri, "phase": phase}
    record.update({k: state[k] for k in ("step", "epoch") if k in state})
    record.update({"metrics": state.get("metrics", {}), "dataset": state.get("dataset"), "data": trained.get("data"),
                   "model": trained.get("model"), "pretrain": trained.get("pretrain"), "seed": trained.get("seed")})
    if phase == "score":
        record["score"] = trained.get("score")
    return record


def _model_config(state: dict, uri: str) -> ModelConfig:
    config = state.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ConfigError(f"checkpoint={uri!r} is not a raysweep checkpoint: its state.json has no config.model")
    if state.get("phase") == "score" and (state.get("module") == "probe" or state.get("mode") == "linear_probe"):
        raise ConfigError(
            f"checkpoint={uri!r} is a linear probe's checkpoint: it holds only the probe layer, not a backbone; "
            "export the pre-trained model it probed (the trial's model_uri, or its score.checkpoint) instead"
        )
    try:
        return ModelConfig(**config["model"])
    except TypeError as e:
        raise ConfigError(f"checkpoint={uri!r} has a config.model raysweep cannot read: {e}") from None


def _load(model_cfg: ModelConfig, state: dict, weights: dict, uri: str):
    """The raysweep model carrying ``weights``, with as many outputs as the checkpoint's head."""
    import timm.models

    from raysweep.models import check_model_name, create_model

    check_model_name(model_cfg.name)
    classifier = timm.models.get_pretrained_cfg_value(model_cfg.name, "classifier") or "head"
    classifier = classifier[0] if isinstance(classifier, (list, tuple)) else classifier
    head = weights.get(f"{classifier}.weight")
    if head is None:
        raise ConfigError(f"checkpoint={uri!r} does not fit model.name={model_cfg.name!r}: "
                          f"its weights have no classifier {classifier!r} (keys: {sorted(weights)[:4]})")
    model = create_model(model_cfg, int(head.shape[0]))
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # shapes that differ from the config's architecture
        raise ConfigError(f"checkpoint={uri!r} does not fit its config's model {model_cfg.name!r}: "
                          f"{' '.join(str(e).split())[:200]}") from None
    if missing or unexpected:
        raise ConfigError(f"checkpoint={uri!r} does not fit its config's model {model_cfg.name!r}: "
                          f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


@main_guard
def main(argv: list[str] | None = None) -> int:
    if (argv := arguments(argv, __doc__)) is None:
        return 0
    positional, options = split_args(argv, {"out": ""})
    for arg in positional:
        name = arg.partition("=")[0]
        if "=" in arg and re.fullmatch(r"[A-Za-z_][\w.]*", name):
            raise ConfigError(f"unknown option {name!r}; allowed: out. {USAGE}")
    if len(positional) != 1:
        raise ConfigError(f"give one CHECKPOINT, got {len(positional)} ({' '.join(positional) or 'none'}); {USAGE}")
    if not options["out"]:
        raise ConfigError(f"out= is missing: the directory to write model.safetensors and config.json into; {USAGE}")
    print(export(positional[0], options["out"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
