#!/usr/bin/env bash
# Installing what the project needs from the machine's packages, shared by bin/ensure-services,
# bin/ensure-test-tools and the Makefile. Sourced, it defines packages_ensure; run, it calls it:
#   bin/lib/packages.sh WHO NEED...
# NEED is one of: python (3.11 with venv), postgresql, redis, mosquitto, nodejs (with npm), chromium (with its
# driver). On Debian and Ubuntu (by /etc/os-release, or the file OS_RELEASE_FILE names) the packages are
# installed with apt-get, as root or through `sudo -n` (never a password prompt: `make` may run unattended).
# Elsewhere, or without root and sudo, it prints the exact command for the platform and fails.

_packages_os() {
    local file=${OS_RELEASE_FILE:-/etc/os-release}
    if [ "$(uname -s)" = Darwin ]; then
        echo macos
        return
    fi
    [ -r "$file" ] || { echo unknown; return; }
    local id id_like
    id=$(. "$file" && echo "${ID:-}")
    id_like=$(. "$file" && echo "${ID_LIKE:-}")
    case " $id $id_like " in
    *" debian "* | *" ubuntu "*) echo debian ;;
    *" fedora "* | *" rhel "*) echo fedora ;;
    *" arch "*) echo arch ;;
    *) echo unknown ;;
    esac
}

# The package names of NEED on OS.
_packages_names() {
    case "$1:$2" in
    debian:python) echo python3.11 python3.11-venv ;;
    debian:postgresql) echo postgresql ;;
    debian:redis) echo redis-server ;;
    debian:mosquitto) echo mosquitto mosquitto-clients ;;
    debian:nodejs) echo nodejs npm ;;
    debian:chromium) echo chromium chromium-driver ;;
    fedora:python) echo python3.11 ;;
    fedora:postgresql) echo postgresql-server postgresql ;;
    fedora:chromium) echo chromium chromedriver ;;
    arch:python) echo python ;;
    arch:chromium) echo chromium ;;
    macos:python) echo python@3.11 ;;
    macos:postgresql) echo postgresql@16 ;;
    macos:nodejs) echo node ;;
    macos:chromium) echo chromedriver ;;
    *:nodejs) echo nodejs npm ;;
    *) echo "$2" ;;
    esac
}

# The command that installs packages on OS, as a user with sudo would type it.
_packages_command() {
    case "$1" in
    debian) echo "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends" ;;
    fedora) echo "sudo dnf install -y" ;;
    arch) echo "sudo pacman -S --needed" ;;
    macos) echo "brew install" ;;
    esac
}

# packages_ensure WHO NEED...: install the packages of each NEED, or say how and return 1.
packages_ensure() {
    local who=$1
    shift
    local os packages=() need
    os=$(_packages_os)
    for need in "$@"; do
        # Word splitting wanted: a need may be several packages.
        # shellcheck disable=SC2207
        packages+=($(_packages_names "$os" "$need"))
    done
    if [ "$os" = unknown ]; then
        echo "$who: missing ${packages[*]}; this platform is not one the set-up knows (Debian, Ubuntu, Fedora," \
            "Arch, macOS): install them with its package manager and run again." >&2
        return 1
    fi
    local runner=() automatic=$os
    if [ "$os" = debian ] && [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            runner=(sudo -n)
        else
            automatic=no
        fi
    fi
    if [ "$automatic" != debian ]; then
        echo "$who: missing ${packages[*]}. Install them with:" >&2
        echo "  $(_packages_command "$os") ${packages[*]}" >&2
        if [ "$os" = debian ]; then
            echo "  (not installed automatically: that needs root, or sudo without a password)" >&2
        fi
        return 1
    fi
    echo "$who: installing ${packages[*]} with apt-get"
    "${runner[@]}" apt-get update -qq >/dev/null
    "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" \
        >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    packages_ensure "$@"
fi
