"""Configuration: ``mailpacer.toml``, the environment and provider presets, resolved at the edge
(flags > environment > file > defaults) into one frozen :class:`Settings`.
"""

from mailpacer.config.file import ConfigFile, load_config, parse_duration, parse_rate
from mailpacer.config.presets import Preset, get_preset
from mailpacer.config.settings import Settings, load_settings, resolve

__all__ = [
    "ConfigFile",
    "Preset",
    "Settings",
    "get_preset",
    "load_config",
    "load_settings",
    "parse_duration",
    "parse_rate",
    "resolve",
]
