"""Flower's own options, read by Flower from this file (``celery ... flower --conf=<this file>``): its ``basic_auth``
from the settings, so that Flower's password is read like every other secret (``IMSREP_FLOWER_PASSWORD``, or the
file of ``IMSREP_FLOWER_PASSWORD_FILE``: a Docker secret) and sits neither on Flower's command line nor in a
``FLOWER_BASIC_AUTH`` variable. Flower executes the file with tornado's ``parse_config_file``: each global named like
one of its options sets that option (flower/command.py ``apply_options``); the others are ignored.
"""

from config.settings import ENV_PREFIX, SettingsError, load_settings

_settings = load_settings()
_password = _settings.flower_password.get_secret_value()
if not _password:
    # Flower without basic_auth serves its pages and REST API (which can revoke and terminate tasks) to anyone.
    raise SettingsError(f"{ENV_PREFIX}FLOWER_PASSWORD: Flower needs a password (or {ENV_PREFIX}FLOWER_PASSWORD_FILE)")
basic_auth = [f"{_settings.flower_user}:{_password}"]
