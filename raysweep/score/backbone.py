"""Downstream models: a timm model with a new head, initialised from a pre-training checkpoint
(local or s3://) or from scratch; features of the first k blocks/stages for linear probing."""

from __future__ import annotations

import torch

from raysweep.core import checkpoint
from raysweep.config import ConfigError, ModelConfig
from raysweep.models import create_model, is_vit

_ARCH_KEYS = ("name", "patch_size", "depth", "embed_dim", "num_heads")


def read_checkpoint(uri: str) -> tuple[dict, dict]:
    """(state.json, model state_dict) of a checkpoint directory (local or s3://)."""
    return checkpoint.read_state(uri), checkpoint.read_weights(uri)


def check_architecture(model_cfg: ModelConfig, state: dict, uri: str) -> None:
    """The checkpoint's architecture must be the one asked for (resolution may differ)."""
    trained = state["config"]["model"]
    for key in _ARCH_KEYS:
        if trained.get(key) != getattr(model_cfg, key):
            raise ConfigError(
                f"score.checkpoint={uri!r} is a {trained['name']} with model.{key}={trained.get(key)!r}, "
                f"but model.{key}={getattr(model_cfg, key)!r} was asked for; use the checkpoint's model.* settings"
            )


def build_model(model_cfg: ModelConfig, num_classes: int, checkpoint: str | None) -> torch.nn.Module:
    """A model with ``num_classes`` outputs; pre-trained weights (all but the head) when given."""
    if checkpoint is None:
        return create_model(model_cfg, num_classes)
    state, weights = read_checkpoint(checkpoint)
    check_architecture(model_cfg, state, checkpoint)
    return transfer(model_cfg, num_classes, weights, source=repr(checkpoint))


def transfer(model_cfg: ModelConfig, num_classes: int, weights: dict, source: str = "the pre-trained model") -> torch.nn.Module:
    """A new model with ``num_classes`` outputs carrying ``weights`` in every layer but the head
    (position embeddings resampled when the resolution differs)."""
    model = create_model(model_cfg, num_classes)
    head = _head_prefixes(model)
    weights = {k: v for k, v in weights.items() if not k.startswith(head)}
    if "pos_embed" in weights and weights["pos_embed"].shape != model.pos_embed.shape:
        from timm.layers import resample_abs_pos_embed

        prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
        weights["pos_embed"] = resample_abs_pos_embed(
            weights["pos_embed"], new_size=model.patch_embed.grid_size, num_prefix_tokens=prefix
        )
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith(head)]
    if missing or unexpected:
        raise ConfigError(
            f"{source} does not fit model.name={model_cfg.name!r}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model


def _head_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the classifier (replaced for the downstream classes)."""
    name = model.default_cfg.get("classifier", "head") if hasattr(model, "default_cfg") else "head"
    names = name if isinstance(name, (list, tuple)) else (name,)
    return tuple(f"{n}." for n in names)


def probe_features(model: torch.nn.Module, x: torch.Tensor, blocks: int) -> torch.Tensor:
    """Pooled features after the first ``blocks`` transformer blocks (ViTs) or stages (CNNs)."""
    feats = model.forward_intermediates(x, indices=[blocks - 1], intermediates_only=True, stop_early=True)[-1]
    return feats.float().mean(dim=(2, 3))  # (B, C, H, W) for ViTs (patch grid) and CNNs alike


def check_probe_blocks(model: torch.nn.Module, model_cfg: ModelConfig, blocks: int, key: str = "score.probe_blocks") -> None:
    available = len(model.blocks) if is_vit(model_cfg.name) and hasattr(model, "blocks") else len(getattr(model, "feature_info", []))
    if available and not 1 <= blocks <= available:
        raise ConfigError(f"{key}={blocks} is out of range for {model_cfg.name}; allowed: 1..{available}")
