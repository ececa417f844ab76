"""Configuration: the typed schema and how ``key=value`` overrides become a validated Config."""

from raysweep.config.errors import ConfigError
from raysweep.config.loading import check_key, config_from_dict, load_config, parse_overrides, schema_keys, to_dict
from raysweep.config.schema import Config, DataConfig, ModelConfig, PretrainConfig, ScoreConfig

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "PretrainConfig",
    "ScoreConfig",
    "check_key",
    "config_from_dict",
    "load_config",
    "parse_overrides",
    "schema_keys",
    "to_dict",
]
