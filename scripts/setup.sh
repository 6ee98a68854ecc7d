#!/usr/bin/env bash
# Installs what em-agent needs to build and test on Debian 12 (as root, or through sudo).
# Safe to run again: apt only installs what is missing.
set -euo pipefail
packages=(
    build-essential cmake pkg-config clang clang-format
    libuv1-dev libxml2-dev libcjson-dev libcmocka-dev
    libarchive-dev libxml2-utils python3 time systemd
    librabbitmq-dev libsqlite3-dev libpq-dev
    rabbitmq-server postgresql sqlite3 openssl
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all packages present"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
