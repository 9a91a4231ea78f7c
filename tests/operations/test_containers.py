"""The container setup: the compose file validates, every service has a health check, the image runs as
a non-root user, and every setting the code reads is documented in docker/.env.example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yml"
REQUIRED = {
    "SECRET_KEY": "x" * 40,
    "POSTGRES_PASSWORD": "pw",
    "FLOWER_BASIC_AUTH": "ops:pw",
    "MQTT_PASSWORD": "mqtt-pw",
    "MQTT_ADMIN_PASSWORD": "mqtt-admin-pw",
}


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed (make test installs docker-compose)")


def run_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in REQUIRED}
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=ROOT,
    )


def test_compose_file_validates_and_every_long_running_service_has_a_health_check():
    result = run_config(REQUIRED)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) >= {"db", "redis", "mosquitto", "web", "worker", "beat", "flower", "mqtt-bridge", "migrate"}
    for name, service in services.items():
        if name == "migrate":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "--appendonly" in services["redis"]["command"]
    assert services["db"]["image"].startswith("timescale/timescaledb")


def test_compose_refuses_to_start_without_the_secrets():
    result = run_config({key: value for key, value in REQUIRED.items() if key != "SECRET_KEY"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user_with_a_health_check():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.M)


def test_every_setting_read_from_the_environment_is_documented():
    settings_source = (ROOT / "telemetry_project" / "settings.py").read_text()
    read = set(re.findall(r'env_[a-z_]+\(\s*"([A-Z0-9_]+)"', settings_source))
    example = (ROOT / "docker" / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", example, re.M))
    assert read, "no settings found"
    assert read <= documented, f"undocumented: {sorted(read - documented)}"
