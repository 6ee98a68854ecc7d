#!/usr/bin/env bash
# Installs what em-agent needs on Debian 12 (as root, or through sudo). Safe to run again:
# apt only installs what is missing.
#
#   scripts/setup.sh build   what the build and the demo need (scripts/demo.sh)
#   scripts/setup.sh test    that, plus what the test suite needs: cmocka, clang and
#                            clang-format, lintian, Chromium (the page's tests, headless),
#                            and RabbitMQ and PostgreSQL, which the tests start as
#                            throwaway servers of their own
#
# Debian starts and enables rabbitmq-server (with epmd) and postgresql when it installs
# them. The tests never use those host services, so when this script installs them it
# keeps them from starting during the install and then disables them: nothing is left
# running or enabled on the host. (A server that was installed before is left alone.)
set -euo pipefail
mode=${1:-build}
build_packages=(
    build-essential cmake pkg-config python3
    libuv1-dev libxml2-dev libcjson-dev libarchive-dev
    librabbitmq-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev libmicrohttpd-dev
)
test_packages=(
    clang clang-format libcmocka-dev libxml2-utils time systemd sqlite3 openssl
    lintian fakeroot dpkg-dev chromium
)
server_packages=(rabbitmq-server postgresql nginx-light vsftpd openssh-server)
case $mode in
build) wanted=("${build_packages[@]}") ;;
test) wanted=("${build_packages[@]}" "${test_packages[@]}" "${server_packages[@]}") ;;
*)
    echo "setup: usage: setup.sh build|test" >&2
    exit 2
    ;;
esac
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${wanted[@]}"; do
    installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all packages present ($mode)"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
new_servers=()
for p in "${server_packages[@]}"; do
    [[ " ${missing[*]} " == *" $p "* ]] && new_servers+=("$p")
done
policy=/usr/sbin/policy-rc.d
placed_policy=false
if [ ${#new_servers[@]} -gt 0 ] && [ ! -e "$policy" ]; then
    # Debian's way to keep maintainer scripts from starting services (exit 101: "not
    # allowed"); removed right after the install.
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    placed_policy=true
fi
cleanup() { if $placed_policy; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT
echo "setup: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
if [ ${#new_servers[@]} -gt 0 ]; then
    units=()
    for p in "${new_servers[@]}"; do
        case $p in
        rabbitmq-server) units+=(rabbitmq-server.service epmd.service epmd.socket) ;;
        postgresql) units+=(postgresql.service postgresql@15-main.service) ;;
        nginx-light) units+=(nginx.service) ;;
        vsftpd) units+=(vsftpd.service) ;;
        openssh-server) units+=(ssh.service ssh.socket) ;;
        esac
    done
    for u in "${units[@]}"; do
        # `systemctl disable` works with or without a running systemd (it removes the
        # enablement links, and the SysV ones through systemd-sysv-install).
        if command -v systemctl >/dev/null; then
            $sudo systemctl disable "$u" >/dev/null 2>&1 || true
            if [ -d /run/systemd/system ]; then
                $sudo systemctl stop "$u" >/dev/null 2>&1 || true
            fi
        fi
    done
    if ! command -v systemctl >/dev/null; then
        for p in "${new_servers[@]}"; do $sudo update-rc.d "$p" disable >/dev/null 2>&1 || true; done
    fi
    # Without systemd (containers), stop what an init script may have started anyway.
    command -v service >/dev/null && for s in rabbitmq-server postgresql nginx vsftpd ssh; do
        $sudo service "$s" stop >/dev/null 2>&1 || true
    done
    # For tests/e2e/hostservices.sh: these servers were installed here, for the tests.
    $sudo mkdir -p /var/lib/em-agent-setup
    printf '%s\n' "${new_servers[@]}" | $sudo tee /var/lib/em-agent-setup/test-servers >/dev/null
    echo "setup: installed ${new_servers[*]} for the tests only: disabled and stopped on this host"
fi
