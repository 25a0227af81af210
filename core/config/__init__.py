"""OEM configuration: schema, loading and cross-checks."""

from aios.config.loader import default_config_path, load_config, parse_config
from aios.config.schema import DeviceProfile, ModelFormat, ModelSpec, OEMConfig, PromptFormat

__all__ = [
    "DeviceProfile",
    "ModelFormat",
    "ModelSpec",
    "OEMConfig",
    "PromptFormat",
    "default_config_path",
    "load_config",
    "parse_config",
]
