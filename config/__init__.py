"""Typed settings, the Celery configuration derived from them, and logging. Imports nothing else of ours."""

from config.settings import AccountSettings, Settings, SettingsError, get_settings, load_settings

__all__ = ["AccountSettings", "Settings", "SettingsError", "get_settings", "load_settings"]
