#!/usr/bin/env bash
# Installs the Debian packages that the test suite runs for real: Prometheus Alertmanager (it delivers
# alerts to the receiver) and Chromium (it lays out the HTML post-mortem). Nothing is done when both
# are present; otherwise apt-get needs root. Under CI=true the tests that need them fail when they are
# missing, so a failed install here is reported, not hidden.
set -euo pipefail
need=()
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "tests/system-packages.sh: missing ${need[*]}; run as root (apt-get) or install them yourself" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
# The Debian package starts an Alertmanager service on :9093; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus-alertmanager 2>/dev/null; then
    systemctl stop prometheus-alertmanager || true
fi
