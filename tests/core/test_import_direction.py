"""The configuration apps import no later app (STYLE.md, "Direction of dependencies"): locations, then devices,
then thresholds, each importing only those before it, apps.core and apps.accounts (roles and principals).

Every module of each app is read, not imported, so imports inside functions count as much as those at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import apps

APPS_DIR = Path(apps.__file__).parent
CONFIGURATION_APPS = ["locations", "devices", "thresholds"]  # in the order they may import each other
BASE_APPS = {"core", "accounts"}
# Project packages outside apps/ that a configuration app never needs: the Celery side, the wiring, tests, benchmarks.
NEVER_IMPORTED = {"workers", "telemetry_project", "tests", "bench"}


def _module_name(path: Path, apps_dir: Path) -> str:
    parts = path.relative_to(apps_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, apps_dir: Path = APPS_DIR) -> set[str]:
    """The absolute names of the modules a source file imports (for `from . import x`, the package),
    relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path, apps_dir)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            else:
                names.add(node.module or "")
    return names


def foreign_imports(app: str, apps_dir: Path = APPS_DIR) -> dict[str, set[str]]:
    """Per module of `app`, the project modules it imports that the direction of dependencies forbids it."""
    allowed = BASE_APPS | set(CONFIGURATION_APPS[: CONFIGURATION_APPS.index(app) + 1])
    result: dict[str, set[str]] = {}
    for path in sorted((apps_dir / app).rglob("*.py")):
        forbidden = set()
        for name in imported_modules(path, apps_dir):
            parts = name.split(".")
            if parts[0] == "apps" and len(parts) > 1 and parts[1] not in allowed:
                forbidden.add(name)
            elif parts[0] in NEVER_IMPORTED:
                forbidden.add(name)
        if forbidden:
            result[str(path.relative_to(apps_dir.parent))] = forbidden
    return result


@pytest.mark.parametrize("app", CONFIGURATION_APPS)
def test_a_configuration_app_imports_no_later_app(app):
    assert foreign_imports(app) == {}


def test_the_walk_sees_imports_anywhere_in_a_module(tmp_path):
    """So a clean result above means clean code, not a walk that found nothing."""
    assert "apps.devices.models" in imported_modules(APPS_DIR / "thresholds" / "models.py")
    assert "apps.thresholds.models" in imported_modules(APPS_DIR / "thresholds" / "selectors.py")

    package = tmp_path / "apps" / "devices"
    package.mkdir(parents=True)
    module = package / "late.py"
    module.write_text(
        "def f():\n    from apps.alerts.models import Alert\n    from . import models\n    import workers.tasks\n"
    )
    apps_dir = tmp_path / "apps"

    assert imported_modules(module, apps_dir) == {"apps.alerts.models", "apps.devices", "workers.tasks"}
    assert foreign_imports("devices", apps_dir) == {"apps/devices/late.py": {"apps.alerts.models", "workers.tasks"}}
