#!/bin/sh
# Make sure Debian's chromium is at /usr/bin/chromium for the browser tests (Playwright drives it through
# executable_path; Playwright's own browser downloads are never used). Called by `make test`.
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: /usr/bin/chromium is missing and apt-get is not available; browser tests will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "ensure-chromium: need root (or sudo) to install chromium; browser tests will be skipped" >&2
        exit 0
    fi
fi
echo "ensure-chromium: installing Debian's chromium (apt-get)…" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
test -x /usr/bin/chromium
