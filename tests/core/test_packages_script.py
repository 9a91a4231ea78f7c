"""bin/lib/packages.sh installs what is missing with apt-get on Debian and Ubuntu (as root, or through sudo -n)
and elsewhere says the exact command and fails. Run against stub apt-get, sudo and id first on PATH: nothing is
ever installed, the stubs only write down how they were called."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bin" / "lib" / "packages.sh"

STUBS = {
    "apt-get": 'echo "DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-} apt-get $*" >> "$STUB_LOG"',
    # `sudo -n true` is the check for sudo without a password; STUB_SUDO=password makes it ask for one.
    "sudo": """[ "$1" = -n ] || { echo "sudo without -n" >> "$STUB_LOG"; exit 1; }
shift
[ "${STUB_SUDO:-}" = ok ] || exit 1
[ "$1" = true ] && exit 0
echo "sudo -n" >> "$STUB_LOG"
exec "$@\"""",
    "id": 'echo "$STUB_UID"',
}

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'
FEDORA = 'NAME="Fedora Linux"\nID=fedora\n'


def run(tmp_path, os_release: str, *, uid: int, sudo: str | None, needs=("postgresql", "redis")):
    bin_dir = tmp_path / "stubs"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STUBS.items():
        if name == "sudo" and sudo is None:
            continue
        stub = bin_dir / name
        stub.write_text("#!/bin/bash\n" + body + "\n")
        stub.chmod(0o755)
    release = tmp_path / "os-release"
    release.write_text(os_release)
    log = tmp_path / "log"
    log.write_text("")
    # Only the stubs and the basic tools: a real sudo or apt-get must never be reached.
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "OS_RELEASE_FILE": str(release),
        "STUB_LOG": str(log),
        "STUB_UID": str(uid),
        "STUB_SUDO": sudo or "",
    }
    if sudo is None:
        env["PATH"] = f"{bin_dir}:{_path_without_sudo(tmp_path)}"
    result = subprocess.run(
        [str(SCRIPT), "make", *needs], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    return result, log.read_text().splitlines()


def _path_without_sudo(tmp_path) -> str:
    """A directory of links to what the script uses from /usr/bin, leaving out sudo."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for name in ("bash", "env", "uname", "cat"):
        link = tools / name
        if not link.exists():
            link.symlink_to(next(Path(d, name) for d in ("/usr/bin", "/bin") if Path(d, name).exists()))
    return str(tools)


INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql redis-server"


@pytest.mark.parametrize("os_release", [DEBIAN, UBUNTU])
def test_as_root_on_debian_it_updates_then_installs(tmp_path, os_release):
    result, calls = run(tmp_path, os_release, uid=0, sudo=None)

    assert result.returncode == 0, result.stderr
    assert calls == ["DEBIAN_FRONTEND= apt-get update -qq", INSTALL]
    assert "make: installing postgresql redis-server with apt-get" in result.stdout


def test_not_root_with_sudo_it_installs_through_sudo_n(tmp_path):
    result, calls = run(tmp_path, DEBIAN, uid=1000, sudo="ok", needs=("mosquitto", "nodejs", "chromium"))

    assert result.returncode == 0, result.stderr
    assert calls == [
        "sudo -n",
        "DEBIAN_FRONTEND= apt-get update -qq",
        "sudo -n",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"
        " mosquitto mosquitto-clients nodejs npm chromium chromium-driver",
    ]


@pytest.mark.parametrize("sudo", ["password", None], ids=["sudo-wants-a-password", "no-sudo"])
def test_not_root_without_usable_sudo_it_prints_the_command_and_fails(tmp_path, sudo):
    result, calls = run(tmp_path, DEBIAN, uid=1000, sudo=sudo)

    assert result.returncode == 1
    assert calls == []
    assert "make: missing postgresql redis-server. Install them with:" in result.stderr
    assert (
        "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
        " postgresql redis-server" in result.stderr
    )
    assert "needs root, or sudo without a password" in result.stderr


def test_on_fedora_it_prints_the_dnf_command_and_installs_nothing(tmp_path):
    result, calls = run(tmp_path, FEDORA, uid=0, sudo="ok", needs=("postgresql", "python"))

    assert result.returncode == 1
    assert calls == []
    assert "sudo dnf install -y postgresql-server postgresql python3.11" in result.stderr


def test_on_an_unknown_platform_it_names_what_is_missing_and_fails(tmp_path):
    result, calls = run(tmp_path, "ID=plan9\n", uid=0, sudo="ok", needs=("redis",))

    assert result.returncode == 1
    assert calls == []
    assert "make: missing redis; this platform is not one the set-up knows" in result.stderr


def test_the_setup_scripts_use_the_shared_installer():
    for script in ("bin/ensure-services", "bin/ensure-test-tools"):
        assert ". bin/lib/packages.sh" in (ROOT / script).read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "bin/lib/packages.sh make python" in makefile
    assert "bin/lib/packages.sh make nodejs" in makefile
