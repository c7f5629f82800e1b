"""Configuration: original FAD/FCOS key names, YAML + KEY VALUE merge, validation."""

from fad.config.defaults import get_default_config
from fad.config.load import load_config, save_config

__all__ = ["get_default_config", "load_config", "save_config"]
