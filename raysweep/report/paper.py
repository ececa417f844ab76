"""The paper's published references (method page §8), by study: what the report page sets beside
our numbers, marked as the published reference. Only numbers the method page gives are numbers
here; where the paper's finding is stated in words, the words are the reference. ``baseline`` is the
study's reference setting (the release's value of the swept key): what the other settings are
compared with, seed by seed, when the experiment has no scratch variant and names no baseline
(``raysweep.report.stats.baseline_of``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from raysweep.experiment import same_value


@dataclass(frozen=True)
class Reference:
    table: str  # where in the paper
    key: str  # the swept key whose values are the paper table's columns
    setting: str  # the published setting (model, data, downstream)
    finding: str  # the published finding, in words
    published: dict = field(default_factory=dict)  # column value -> published top-1 (%), or the published finding
    # for that column in words where the method page gives no number
    note: str = ""  # what the reader should know about the reference (e.g. where a number is missing)
    baseline: float | None = None  # the reference setting of ``key`` (the release's value)


RELEASE = "ViT-Tiny, L = 1,000, 512 px fractals, fine-tuned on CIFAR-100 (the authors' release)"

REFERENCES: dict[str, Reference] = {
    "delta": Reference("Table 5", "data.delta", RELEASE + ", σ = 3.5",
                       "Δ = 0.1 is best; the jump from Δ = 0.01 to 0.05 is large (the perturbations need some support).",
                       {0.01: 19.9, 0.05: 83.0, 0.1: 84.2, 0.2: 83.4}, baseline=0.1),
    "sigma": Reference("Table 6", "data.sigma", RELEASE,
                       "The most complex shape (largest σ short of noise) is best; even σ = 6.0 (noise-like) beats scratch.",
                       baseline=3.5),
    "L": Reference("Table 7", "data.L", RELEASE.replace("L = 1,000", "L varied"),
                   "Larger L is better; L = 16 already beats scratch.", baseline=1000),
    "baselines": Reference("Table 2", "variant", RELEASE.replace("L = 1,000", "1,000 classes"),
                           "1p-frac ≈ FractalDB-1k (1M images) ≈ OFDB-1k, all far above scratch."),
    "real_image": Reference("Tables 11/12", "data.representation",
                            "ViT-Tiny, one real image, L = 1,000 warps, fine-tuned on CIFAR-100, mean of five images",
                            "Grayscale or Canny representations with affine warps pre-train best; a single real image "
                            "pre-trains far better than scratch."),
    "linear_probe": Reference("§6 (linear probing)", "score.probe_blocks",
                              "ViT-Tiny, first k ∈ {1, 2, 3} blocks frozen, linear classifier on CIFAR-100",
                              "1p-frac's early blocks beat ImageNet-1k pre-training's in linear probes."),
    "table8": Reference("Table 8", "variant",
                        "ViT-B/16, 1p-frac with L = 21,000 (512 px fractals), fine-tuned on ImageNet-1k at 224 px",
                        "ViT-B pre-trained on 1p-frac with L = 21,000 and fine-tuned on ImageNet-1k beats ImageNet-21k "
                        "pre-training (14M real images).",
                        {"1p-frac": "above ImageNet-21k pre-training"},
                        note="The method page states Table 8's finding without its numbers, so the reference is the finding "
                             "in words. For scale: ViT-B pre-trained on ImageNet-21k reaches 81.8 % top-1 fine-tuned on "
                             "ImageNet-1k in the same group's earlier FDSL paper (Kataoka et al., CVPR 2022), not a number "
                             "of this paper."),
}


def reference_for(study: str | None) -> Reference | None:
    return REFERENCES.get(study) if study else None


def published_value(ref: Reference, value) -> float | str | None:
    """The published top-1 for one column value (numbers compared as numbers: '0.10' is 0.1), or
    the published finding for it in words."""
    return next((top1 for key, top1 in ref.published.items() if same_value(key, value)), None)
