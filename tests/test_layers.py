"""Import direction between the apps: each app may import only the apps before it in LAYERS, at module level
or inside functions alike, so that a change to a higher app never breaks a lower one and the lower can be
read, tested and reused without the higher. The order is the one the code has; README's "Project layout"
shows it. An import against it is allowed only when listed in EXCEPTIONS with its reason.

anomaly sits below alerts: alerts evaluation calls the detectors and opens anomaly alerts, so anomaly must
never import alerts. operations sits low because its metrics, logs and throttles are used by every app that
handles requests or tasks; the higher apps add their own scrape-time collectors to it (AppConfig.ready).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS = [
    "core",
    "accounts",
    "operations",
    "locations",
    "devices",
    "thresholds",
    "anomaly",
    "ingest",
    "deadletters",
    "aggregates",
    "stats",
    "alerts",
    "notifications",
    "commands",
    "mqtt",
    "sparkplug",
    "influx",
    "dashboard",
    "demo",
]

# (importing file, imported app): reason.
# (importing file, imported app): reason. An entry must say why the import cannot go the other way.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("apps/mqtt/bridge.py", "sparkplug"): "the bridge is the one MQTT client of the backend: it hands spBv1.0 "
    "topics to the Sparkplug host, which is built on mqtt's envelope, message checks and micro-batches",
    ("apps/mqtt/publisher.py", "sparkplug"): "a command to a Sparkplug device leaves as the NCMD/DCMD the "
    "Sparkplug app encodes, on the publisher's one broker connection",
}


def _imported_apps(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found.update(module.split(".")[1] for module in modules if module.startswith("apps.") and "." in module)
    return found


def _violations(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / "apps").rglob("*.py")):
        relative = path.relative_to(root)
        if len(relative.parts) < 3 or "migrations" in relative.parts:
            continue
        app = relative.parts[1]
        for imported in _imported_apps(path):
            if imported == app or (str(relative), imported) in EXCEPTIONS:
                continue
            if LAYERS.index(imported) > LAYERS.index(app):
                found.append(f"{relative} ({app}) imports {imported}, which sits above it")
    return found


def test_every_app_is_in_a_layer():
    apps = {path.parent.name for path in (ROOT / "apps").glob("*/__init__.py")}
    assert apps == set(LAYERS)


def test_no_app_imports_one_above_it():
    assert _violations() == []


def test_the_check_sees_an_upward_import(tmp_path):
    # The check itself must be able to fail: an anomaly module importing alerts is reported.
    module = tmp_path / "apps" / "anomaly" / "upward.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from apps.alerts.models import Alert\n")
    assert _violations(tmp_path) == ["apps/anomaly/upward.py (anomaly) imports alerts, which sits above it"]


def test_every_exception_is_still_needed():
    for (file, imported), _reason in EXCEPTIONS.items():
        assert imported in _imported_apps(ROOT / file), f"{file} no longer imports {imported}: drop the exception"
