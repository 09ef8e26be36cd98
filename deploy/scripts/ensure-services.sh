#!/usr/bin/env bash
# Makes sure the Debian packages the integration tests need are installed: mosquitto (MQTT
# broker) and prometheus (server + promtool). Installs them through apt when running as root;
# otherwise names the missing package and fails, so `make test` never silently skips a test.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
# de-duplicate
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-services: installing Debian packages: $pkgs" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
else
    echo "ensure-services: missing Debian packages: $pkgs (install them: sudo apt-get install $pkgs)" >&2
    exit 1
fi
