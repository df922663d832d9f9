#!/usr/bin/env bash
# What the test suite needs beyond Rust, installed by the project itself so a
# fresh machine needs nothing done by hand. scripts/test.sh runs this first;
# it is idempotent and quick when everything is already there.
#
#   Debian packages: chromium + chromium-driver (the console's browser test),
#                    prometheus (promtool: alert rules and the /metrics scrape)
#   PyPI, in a venv: schemathesis (the OpenAPI contract run)
#
# The venv lives in $FLASHGATE_TEST_TOOLS (default ~/.cache/flashgate-test-tools),
# so every checkout on the machine shares one.
set -euo pipefail

TOOLS="${FLASHGATE_TEST_TOOLS:-$HOME/.cache/flashgate-test-tools}"
SCHEMATHESIS_VERSION="4.32.5"

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)

if ((${#need_apt[@]})); then
    echo "install-test-deps: installing Debian packages: ${need_apt[*]}" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "install-test-deps: need root (or sudo) to install ${need_apt[*]}" >&2
            exit 1
        }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    # prometheus is installed for promtool only; the tests never start it.
    $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

venv="$TOOLS/venv"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "install-test-deps: installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
    mkdir -p "$TOOLS"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi

for tool in chromium chromedriver promtool; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install-test-deps: $tool is still missing after the install" >&2
        exit 1
    }
done
"$venv/bin/st" --version >/dev/null
