"""Config: the TOML schema as frozen Structs, loading, the shipped default and model table."""

from ._exceptions import ConfigError
from ._load import default_config_path, load_config, parse_config
from ._models import (
    ModelInfo,
    ModelTable,
    deployment_price,
    model_info,
    model_table,
    parse_model_table,
)
from ._prices import Price, Rates
from ._schema import (
    ClusterConfig,
    Config,
    CooldownConfig,
    Deployment,
    JobsConfig,
    RouterConfig,
    ServerConfig,
    is_loopback_host,
    parse_host_port,
)
from ._secret import Secret

__all__ = [
    "ClusterConfig",
    "Config",
    "ConfigError",
    "CooldownConfig",
    "Deployment",
    "JobsConfig",
    "ModelInfo",
    "ModelTable",
    "Price",
    "Rates",
    "RouterConfig",
    "Secret",
    "ServerConfig",
    "default_config_path",
    "deployment_price",
    "is_loopback_host",
    "load_config",
    "model_info",
    "model_table",
    "parse_config",
    "parse_host_port",
    "parse_model_table",
]
