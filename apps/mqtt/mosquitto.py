"""The project's Mosquitto outside containers: docker/mosquitto.conf with a local port and paths, for
`make run` (manage.py run_broker) and the tests, so they run the broker exactly as configured for production.
"""

from __future__ import annotations

import getpass
import glob
import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

CONFIG_TEMPLATE = Path(settings.BASE_DIR) / "docker" / "mosquitto.conf"
DYNSEC_FILE = "dynamic-security.json"
# Where distributions put the dynamic-security plugin (Debian and Ubuntu per architecture, Alpine, Homebrew).
PLUGIN_PATTERNS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/*/mosquitto_dynamic_security.so",
    "/opt/homebrew/lib/mosquitto_dynamic_security.so",
)


def plugin_path() -> str:
    """MQTT_DYNSEC_PLUGIN, or the plugin where the system's Mosquitto package installed it."""
    if settings.MQTT_DYNSEC_PLUGIN:
        return settings.MQTT_DYNSEC_PLUGIN
    for pattern in PLUGIN_PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise ImproperlyConfigured(
        "Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) was not found: install Mosquitto 2 "
        "(apt-get install mosquitto mosquitto-clients) or set MQTT_DYNSEC_PLUGIN to its path."
    )


def render_config(
    *, directory: Path, port: int, bind_address: str = "127.0.0.1", overrides: dict[str, str | None] | None = None
) -> Path:
    """Write `directory`/mosquitto.conf: the project's configuration with this port, persistence and accounts
    in `directory`, and (run as any user, root included) no switch to a `mosquitto` user that could not
    write there. `overrides` replace further directives, or drop them when None (tests use it for small
    queues, or a plain broker)."""
    directory.mkdir(parents=True, exist_ok=True)
    replacements = {
        "listener": f"{port} {bind_address}",
        "plugin": plugin_path(),
        "plugin_opt_config_file": str(directory / DYNSEC_FILE),
        "persistence_location": f"{directory}/",
        "user": getpass.getuser(),
        **(overrides or {}),
    }
    lines, replaced = [], set()
    for line in CONFIG_TEMPLATE.read_text().splitlines():
        directive = line.split(" ", 1)[0]
        if directive in replacements:
            # The first line of a directive takes the new value; further ones (log_type ...) go.
            if directive in replaced or replacements[directive] is None:
                continue
            replaced.add(directive)
            line = f"{directive} {replacements[directive]}"
        lines.append(line)
    lines.extend(
        f"{directive} {value}"
        for directive, value in replacements.items()
        if directive not in replaced and value is not None
    )
    path = directory / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def init_accounts(*, directory: Path, admin_username: str, admin_password: str) -> Path:
    """A new dynamic-security file holding only the admin account (mosquitto_ctrl writes it, so the format is
    the installed broker's own); the backend then provisions everything else over MQTT."""
    if not admin_username or not admin_password:
        raise ImproperlyConfigured("MQTT_ADMIN_USERNAME and MQTT_ADMIN_PASSWORD must be set to run the broker.")
    if shutil.which("mosquitto_ctrl") is None:
        raise ImproperlyConfigured("mosquitto_ctrl not found: apt-get install mosquitto-clients")
    path = directory / DYNSEC_FILE
    path.unlink(missing_ok=True)
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(path), admin_username, admin_password],
        check=True,
        capture_output=True,
    )
    path.chmod(0o600)
    return path
