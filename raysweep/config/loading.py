"""Turn a YAML file and ``key=value`` overrides into a validated :class:`Config`.

Syntax is Hydra's: the YAML is composed by Hydra (so ``defaults:`` lists work) and every override
is parsed by Hydra's override grammar. Values are merged into the structured schema with OmegaConf,
which checks types; the dataclasses then check ranges. Every failure becomes a one-line
:class:`ConfigError` that names the key, the value, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from raysweep.config.errors import ConfigError
from raysweep.config.schema import Config


def schema_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a schema dataclass, e.g. ``data.sigma``."""
    keys = []
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        sub = _dataclass_type(cls, f.name)
        keys.extend(schema_keys(sub, name + ".") if sub else [name])
    return keys


def _dataclass_type(cls: type, name: str):
    default = next(f for f in dataclasses.fields(cls) if f.name == name)
    if default.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = default.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(value):
            return type(value)
    return None


def check_key(key: str, cls: type = Config) -> None:
    """Raise a one-line error for a dotted key that the schema does not have."""
    if cls is Config and key in ("budget", "budgets", "variants", "study"):
        raise ConfigError(f"{key} is a key of an experiment, not of a single run; use it with "
                          f"python -m raysweep.tune EXPERIMENT.yaml {key}=...")
    parts = key.split(".")
    node, path = cls, []
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            where = ".".join(path)
            full = [f"{where}.{n}" if where else n for n in names]
            close = difflib.get_close_matches(key, schema_keys(cls), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                f"unknown config key '{key}'; {hint}valid keys{' under ' + repr(where) if where else ''}: {', '.join(full)}"
            )
        path.append(part)
        sub = _dataclass_type(node, part)
        if sub is None:
            if i != len(parts) - 1:
                raise ConfigError(f"config key '{'.'.join(path)}' is a value, not a section; '{key}' does not exist")
            return
        node = sub
    raise ConfigError(f"config key '{key}' is a section; set one of its keys, e.g. '{key}.{dataclasses.fields(node)[0].name}'")


#: keys of a search-space leaf in an experiment YAML, e.g. ``delta: {grid: [0.01, 0.1]}``
SPACE_KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
#: top-level keys whose values are free-form maps or lists, never flattened
OPAQUE = ("budgets", "variants")


def is_space(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in SPACE_KINDS


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'data': {'sigma': 1}}`` -> ``{'data.sigma': 1}`` (search-space leaves stay whole)."""
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if key in OPAQUE:
            flat[key] = v
        elif isinstance(v, Mapping) and v and all(isinstance(x, str) for x in v) and not is_space(v):
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def parse_overrides(overrides: Sequence[str], sweeps: bool = False) -> dict[str, Any]:
    """Parse ``key=value`` strings with Hydra's override grammar into ``{key: python value}``.

    With ``sweeps``, Hydra's sweep syntax becomes a search space: ``a=1,2`` and ``a=range(1,4)``
    a grid, ``a=interval(0.1,0.5)`` a uniform range."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed: dict[str, Any] = {}
    for text in overrides:
        if "=" not in text:
            raise ConfigError(f"argument {text!r} is not a key=value override (e.g. data.sigma=3.5)")
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as e:
            raise ConfigError(f"cannot parse override {text!r}: {str(e).splitlines()[0]}") from None
        key = override.key_or_group.lstrip("+~")
        if override.is_sweep_override():
            if not sweeps:
                raise ConfigError(
                    f"override {text!r} is a sweep; sweep with python -m raysweep.tune (or a search space in its YAML)"
                )
            parsed[key] = _space_of(text, override.value())
            continue
        parsed[key] = override.value()
    return parsed


def _space_of(text: str, sweep) -> dict:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    if isinstance(sweep, ChoiceSweep):
        return {"grid": list(sweep.list)}
    if isinstance(sweep, RangeSweep):
        return {"grid": list(range(int(sweep.start), int(sweep.stop), int(sweep.step or 1)))}
    if isinstance(sweep, IntervalSweep):
        return {"uniform": [sweep.start, sweep.end]}
    raise ConfigError(f"override {text!r}: this kind of sweep is not supported; use a,b,c or range(...) or interval(a,b)")


def compose_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Compose an experiment YAML with Hydra (``defaults:`` lists resolved) into a plain dict."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"experiment file {str(path)!r} does not exist; give the path of a .yaml file")
    if file.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"experiment file {str(path)!r} is not a .yaml file")
    import yaml

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(file.parent), version_base=None):
            composed = compose(config_name=file.stem)
    except yaml.YAMLError as e:  # a broken YAML: where, and what the parser expected
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"cannot read {str(path)!r}:{where}: {what}; fix the YAML syntax") from None
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"cannot read {str(path)!r}: {str(e).splitlines()[0]}") from None
    finally:
        GlobalHydra.instance().clear()
    return OmegaConf.to_container(composed, resolve=True)  # type: ignore[return-value]


def build_config(values: Mapping[str, Any]) -> Config:
    """Merge flat ``{dotted key: value}`` into the schema's defaults and validate."""
    cfg = OmegaConf.structured(Config)
    for key, value in values.items():
        check_key(key)
        try:
            OmegaConf.update(cfg, key, value, merge=True)
        except OmegaConfBaseException as e:
            msg = str(e).splitlines()[0]
            raise ConfigError(f"{key}={value!r}: {msg}") from None
    try:
        return OmegaConf.to_object(cfg)  # runs every section's __post_init__ validation
    except OmegaConfBaseException as e:
        cause = e.__cause__ if isinstance(e.__cause__, ConfigError) else None
        if cause is not None:
            raise cause from None
        raise ConfigError(str(e).splitlines()[0]) from None


def load_config(overrides: Sequence[str] = (), yaml_path: str | os.PathLike | None = None) -> Config:
    """The schema's defaults, then the YAML (if any), then the command-line overrides; validated."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        values.update(flatten(compose_yaml(yaml_path)))
    values.update(parse_overrides(overrides))
    return build_config(values)


def config_from_dict(tree: Mapping[str, Any]) -> Config:
    """The Config of a nested dict (``to_dict``'s output: a checkpoint's or a job's config)."""
    return build_config(flatten(tree))


def to_dict(cfg: Config) -> dict[str, Any]:
    """A plain nested dict of a config (for manifests, checkpoints and logs)."""
    return dataclasses.asdict(cfg)
