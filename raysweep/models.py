"""Models: any timm model by name, built from the schema's ``model.*`` keys.

ViT-family models also take ``img_size``, ``patch_size`` and depth/width overrides (for small
inputs); other families (ResNets, ...) are built by name with their own defaults.
"""

from __future__ import annotations

import difflib

from raysweep.config import ConfigError, ModelConfig

_VIT_KWARGS = ("img_size", "patch_size", "depth", "embed_dim", "num_heads")


def is_vit(name: str) -> bool:
    import timm

    try:
        arch = timm.models.get_arch_name(name)
    except Exception:  # noqa: BLE001 - an unknown name is reported by check_model_name
        return False
    return arch in ("vision_transformer", "deit", "vision_transformer_hybrid") or name.startswith(("vit_", "deit_"))


def check_model_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        close = close_model_names(name, timm.list_models())
        hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
        raise ConfigError(f"model.name={name!r} is not a timm model{hint}")


def close_model_names(name: str, names: list[str], n: int = 3) -> list[str]:
    """The names closest to ``name``, as a whole or by their start (a typo in ``vit_tinny`` is
    meant for ``vit_tiny_patch16_224``, whose start it spells, more than for ``gcvit_tiny``)."""
    def score(candidate: str) -> float:
        whole = difflib.SequenceMatcher(None, name, candidate).ratio()
        start = max(difflib.SequenceMatcher(None, name, candidate[: len(name) + d]).ratio() for d in (-1, 0, 1))
        return max(whole, start)

    scored = sorted(((score(c), c) for c in names), key=lambda sc: (-sc[0], len(sc[1]), sc[1]))
    return [c for s, c in scored[:n] if s >= 0.6]


def architecture_kwargs(cfg: ModelConfig) -> dict:
    """The size arguments ``timm.create_model`` gets besides the name (ViTs only; other families
    are built with their own defaults). An export records them as timm's ``model_args``."""
    if not is_vit(cfg.name):
        return {}
    return {k: getattr(cfg, k) for k in _VIT_KWARGS if getattr(cfg, k) is not None}


def create_model(cfg: ModelConfig, num_classes: int):
    """A randomly initialised timm model with ``num_classes`` outputs."""
    import timm

    check_model_name(cfg.name)
    kwargs = {"num_classes": num_classes, "drop_path_rate": cfg.drop_path, **architecture_kwargs(cfg)}
    try:
        return timm.create_model(cfg.name, pretrained=False, **kwargs)
    except (TypeError, ValueError, AssertionError) as e:
        raise ConfigError(f"cannot build model.name={cfg.name!r} with {kwargs}: {' '.join(str(e).split())[:200]}") from None
