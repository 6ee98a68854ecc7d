#!/usr/bin/env bash
# The servers scripts/setup.sh installed for the tests (it records which in
# /var/lib/em-agent-setup/test-servers) are neither enabled nor running as host services:
# the tests start their own, and a developer's machine must not be left serving
# RabbitMQ, PostgreSQL, nginx, an FTP server or sshd. Skips where setup.sh did not install
# them (they were there before, and are the machine owner's business).
set -u
list=/var/lib/em-agent-setup/test-servers
[ -f "$list" ] || { echo "SKIP: scripts/setup.sh did not install the test servers here"; exit 77; }
fails=0
wants=/etc/systemd/system/multi-user.target.wants
while read -r pkg; do
    case $pkg in
    rabbitmq-server) units="rabbitmq-server.service epmd.service"; proc="beam.smp.*-home /var/lib/rabbitmq" ;;
    postgresql) units="postgresql.service postgresql@15-main.service"; proc="postgres -D /var/lib/postgresql" ;;
    nginx-light) units="nginx.service"; proc="nginx: master process /usr/sbin/nginx" ;;
    vsftpd) units="vsftpd.service"; proc="^/usr/sbin/vsftpd /etc/vsftpd.conf" ;;
    openssh-server) units="ssh.service ssh.socket"; proc="^sshd: /usr/sbin/sshd( -D)? \[listener\]" ;;
    *) continue ;;
    esac
    for u in $units; do
        if [ -e "$wants/$u" ] || [ -e "/etc/systemd/system/sockets.target.wants/$u" ]; then echo "FAIL $u is enabled"; fails=$((fails + 1)); else echo "ok   $u is not enabled"; fi
    done
    if [ "$pkg" = rabbitmq-server ] && [ -e /etc/systemd/system/sockets.target.wants/epmd.socket ]; then
        echo "FAIL epmd.socket is enabled"
        fails=$((fails + 1))
    fi
    if pgrep -f "$proc" >/dev/null; then echo "FAIL $pkg runs as a host service"; fails=$((fails + 1)); else echo "ok   $pkg does not run as a host service"; fi
done <"$list"
[ "$fails" -eq 0 ]
