"""How a sweep's numbers are read: means over seeds with their 95 % confidence interval
(Student's t, n - 1 degrees of freedom), differences to a baseline paired by seed, and the rules
that flag a trial whose pre-training or downstream score stayed at chance. ``results.md``, the
report page and the plots all use these, so they agree.

The baseline (one place, :func:`baseline_of`): the one the experiment names (``baseline:``); else a
variant that sets ``pretrain.steps: 0`` (scratch); else, for a paper study with a reference setting
(``Reference.baseline`` in :mod:`raysweep.report.paper`: Δ = 0.1, σ = 3.5, L = 1,000), the grid's
value nearest it; else none."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from raysweep.experiment import Experiment, same_value, swept_values
from raysweep.report.paper import reference_for

CONFIDENCE = 0.95
#: pre-training stayed at chance: final train top-1 at most this many points above 100/L ...
PRETRAIN_CHANCE_POINTS = 3.0
#: ... or, where a run reported no train top-1, final loss at least this fraction of ln L
PRETRAIN_CHANCE_LOSS = 0.97
#: the downstream score ended at chance: top-1 at most this many points above 100/classes
DOWNSTREAM_CHANCE_POINTS = 2.0


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` values and its confidence interval: ``half`` is the interval's half-width,
    None with fewer than two values (no interval)."""

    mean: float | None
    half: float | None
    n: int
    std: float | None = None

    @property
    def low(self) -> float | None:
        return None if self.half is None else self.mean - self.half

    @property
    def high(self) -> float | None:
        return None if self.half is None else self.mean + self.half

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (a difference that is real at this confidence)."""
        return self.half is not None and (self.low > 0 or self.high < 0)


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """Student's t quantile of a two-sided ``confidence`` interval of the mean of ``n`` values."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def estimate(values: Iterable[Any]) -> Estimate:
    """Mean and 95 % t interval of the finite numbers among ``values``."""
    xs = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return Estimate(None, None, 0)
    mean = sum(xs) / n
    if n == 1:
        return Estimate(mean, None, 1)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Estimate(mean, t_quantile(n) * std / math.sqrt(n), n, std)


def fmt_estimate(est: Estimate, digits: int = 1, signed: bool = False) -> str:
    """``39.7 [36.5, 42.9]``; the mean alone with one value; ``—`` with none."""
    if est.mean is None:
        return "—"
    f = f"{{:{'+' if signed else ''}.{digits}f}}".format
    return f(est.mean) if est.half is None else f"{f(est.mean)} [{f(est.low)}, {f(est.high)}]"


# ------------------------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class Baseline:
    key: str  # a swept key, or "variant" (its value then a variant's label)
    value: Any
    why: str  # how it was chosen, in words

    @property
    def label(self) -> str:
        return str(self.value) if self.key == "variant" else f"{self.key} = {self.value}"


def baseline_of(exp: Experiment) -> Baseline | None:
    """The configuration the others are compared with (see the module's docstring)."""
    if exp.baseline:
        (key, value), = exp.baseline.items()
        return Baseline(key, value, f"named by {exp.baseline_from} (baseline.{key})")
    for i in range(len(exp.variants)):
        if exp.variant(i).get("pretrain.steps") == 0:
            return Baseline("variant", exp.variant_name(i), "the scratch variant (pretrain.steps: 0)")
    ref = reference_for(exp.study)
    values = swept_values(exp, ref.key) if ref is not None and ref.baseline is not None else None
    if values:
        try:
            value = min(values, key=lambda v: abs(float(v) - float(ref.baseline)))
        except (TypeError, ValueError):
            value = next((v for v in values if same_value(v, ref.baseline)), None)
        if value is not None:
            exact = "" if same_value(value, ref.baseline) else f"; the grid's value nearest {ref.baseline}"
            return Baseline(ref.key, value, f"the paper's reference setting ({ref.table}: {ref.key} = {ref.baseline}{exact})")
    return None


@dataclass(frozen=True)
class Difference:
    config: dict[str, Any]  # the configuration's values of the grouping keys
    seeds: list  # the seeds both it and its baseline finished
    estimates: dict[str, Estimate]  # per metric column: the paired difference (configuration - baseline)


def paired_differences(rows: list[dict], keys: list[str], baseline: Baseline, columns: list[str]) -> list[Difference]:
    """Every configuration (rows grouped by ``keys``) other than the baseline, minus its baseline:
    the configuration with the same values of the other keys and the baseline's value of its key.
    Paired by seed: only seeds that finished in both count, and each difference is taken within one
    seed; the estimate is the mean of those differences with its 95 % t interval."""
    done = [r for r in rows if r.get("status") == "done"]
    groups: dict[tuple, list[dict]] = {}
    for row in done:
        groups.setdefault(tuple(str(row.get(k)) for k in keys), []).append(row)
    at = keys.index(baseline.key)
    by_value = {k: v for k, v in groups.items() if same_value(v[0].get(baseline.key), baseline.value)}
    out = []
    for key, members in groups.items():
        if key in by_value:
            continue
        partner = next((v for k, v in by_value.items() if k[:at] + k[at + 1:] == key[:at] + key[at + 1:]), [])
        base_by_seed = {str(r.get("seed")): r for r in partner}
        mine_by_seed = {str(r.get("seed")): r for r in members}
        seeds = sorted(set(base_by_seed) & set(mine_by_seed), key=lambda s: (len(s), s))
        estimates = {}
        for column in columns:
            pairs = [(mine_by_seed[s].get(column), base_by_seed[s].get(column)) for s in seeds]
            estimates[column] = estimate(a - b for a, b in pairs if isinstance(a, (int, float)) and isinstance(b, (int, float)))
        out.append(Difference({k: members[0].get(k) for k in keys}, [mine_by_seed[s].get("seed") for s in seeds], estimates))
    return out


# --------------------------------------------------------------------------------------------- chance


def pretrain_at_chance(top1: float | None, loss: float | None, classes: int) -> bool:
    """Pre-training learned nothing: its final train top-1 within PRETRAIN_CHANCE_POINTS of
    chance (100/L); where it reported no top-1, its final loss within 3 % of ln L (a uniform guess)."""
    if isinstance(top1, (int, float)):
        return top1 <= 100.0 / classes + PRETRAIN_CHANCE_POINTS
    return isinstance(loss, (int, float)) and loss >= PRETRAIN_CHANCE_LOSS * math.log(classes)


def downstream_at_chance(top1: float | None, classes: int) -> bool:
    """The downstream score (fine-tune or probe) ended at chance: top-1 within
    DOWNSTREAM_CHANCE_POINTS of 100/classes."""
    return isinstance(top1, (int, float)) and top1 <= 100.0 / classes + DOWNSTREAM_CHANCE_POINTS
