# servers.sh — throwaway RabbitMQ and PostgreSQL servers for end-to-end tests, sourced by
# the test scripts. Each server lives in a directory of the test's own, listens only on
# loopback or a unix socket, and is stopped by pid (../shared/reference/env-poc.md).
#
#   rmq_start DIR PORT     starts a broker on 127.0.0.1:PORT (epmd on PORT+1, dist PORT+2);
#                          sets RMQ_PID, RMQ_EPMD_PID, RMQ_URL; waits until it accepts logins
#   rmq_stop [kill]        stops it (TERM and wait, or KILL of its process group)
#   rmq_ctl ARGS...        rabbitmqctl against it
#   pg_start DIR           starts PostgreSQL on a unix socket in DIR; sets PG_PID, PG_URL
#   pg_stop                stops it
#   pg_crash, pg_restart   kills it as a crash would; starts it again on the same data
# Servers still running when the test's shell exits are stopped by servers_cleanup, which
# the test should call from its EXIT trap.

RMQ_PID="" RMQ_EPMD_PID="" RMQ_DIR="" RMQ_PORT=""
PG_PID="" PG_DIR=""

# The broker's environment: its own home (cookie), epmd, node name, ports and data.
_rmq_vars() {
    RMQ_VARS=(HOME="$RMQ_DIR/home" ERL_EPMD_PORT=$((RMQ_PORT + 1))
        RABBITMQ_NODENAME="em_test_$RMQ_PORT@localhost"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$RMQ_PORT"
        RABBITMQ_DIST_PORT=$((RMQ_PORT + 2))
        RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia" RABBITMQ_LOG_BASE="$RMQ_DIR/log"
        RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
        RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
        RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq")
}

rmq_ctl() {
    # Not /usr/sbin/rabbitmqctl: that wrapper switches to the rabbitmq user and its cookie.
    _rmq_vars
    env "${RMQ_VARS[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -n "em_test_$RMQ_PORT@localhost" "$@"
}

# rmq_start DIR PORT: a fresh broker, or the same one again when DIR already holds its data.
rmq_start() {
    RMQ_DIR=$1 RMQ_PORT=$2
    mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/log" "$RMQ_DIR/mnesia"
    [ -f "$RMQ_DIR/enabled_plugins" ] || echo "[]." >"$RMQ_DIR/enabled_plugins"
    : >"$RMQ_DIR/rabbitmq-env.conf"
    [ -f "$RMQ_DIR/rabbitmq.conf" ] || : >"$RMQ_DIR/rabbitmq.conf"
    if [ -z "$RMQ_EPMD_PID" ] || ! kill -0 "$RMQ_EPMD_PID" 2>/dev/null; then
        epmd -port $((RMQ_PORT + 1)) </dev/null >/dev/null 2>&1 &
        RMQ_EPMD_PID=$!
    fi
    # A simple command (not a function, which would run in a subshell): "$!" must be the
    # broker's own pid, and setsid makes it the leader of a process group that rmq_stop
    # can kill whole.
    _rmq_vars
    env "${RMQ_VARS[@]}" setsid /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null \
        >>"$RMQ_DIR/log/out" 2>&1 &
    RMQ_PID=$!
    RMQ_URL="amqp://guest:guest@127.0.0.1:$RMQ_PORT/%2f"
    local i
    for i in $(seq 1 300); do
        # The AMQP listener opens last in the boot; on a loaded machine the broker may still
        # turn logins away for a moment, so wait for it to say it has started.
        if (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_PORT") 2>/dev/null; then
            timeout 60 bash -c "$(declare -f _rmq_vars rmq_ctl); RMQ_DIR='$RMQ_DIR' RMQ_PORT='$RMQ_PORT' rmq_ctl -q await_startup" >/dev/null 2>&1 || true
            return 0
        fi
        if ! kill -0 "$RMQ_PID" 2>/dev/null; then
            echo "servers.sh: the broker exited; its log:" >&2
            tail -20 "$RMQ_DIR/log/out" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "servers.sh: the broker did not start in 30 s" >&2
    return 1
}

rmq_stop() {
    [ -n "$RMQ_PID" ] || return 0
    if [ "${1:-}" = kill ]; then
        kill -KILL -- "-$RMQ_PID" 2>/dev/null || true
    else
        kill -TERM "$RMQ_PID" 2>/dev/null || true
    fi
    wait "$RMQ_PID" 2>/dev/null || true
    # Whatever of the broker's process group is left (beam, erl_child_setup).
    kill -KILL -- "-$RMQ_PID" 2>/dev/null || true
    RMQ_PID=""
    # A killed beam lets go of its port a moment later; a restart must not race it.
    local i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_PORT") 2>/dev/null || return 0
        sleep 0.1
    done
}

rmq_queue_count() { # messages ready + unacked in queue $1
    rmq_ctl -q list_queues name messages | awk -v q="$1" '$1 == q { print $2 }'
}

pg_start() {
    PG_DIR=$1
    local bin=/usr/lib/postgresql/15/bin
    mkdir -p "$PG_DIR"
    # initdb refuses root: run it, and the server, in a user namespace as uid 1000.
    unshare --user --map-user=1000 --map-group=1000 -- \
        "$bin/initdb" -D "$PG_DIR/data" -U em --auth=trust -E UTF8 --locale=C.UTF-8 -N \
        >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    unshare --user --map-user=1000 --map-group=1000 -- \
        "$bin/postgres" -D "$PG_DIR/data" -k "$PG_DIR" -c listen_addresses= -c fsync=off \
        >"$PG_DIR/server.log" 2>&1 &
    PG_PID=$!
    PG_URL="postgresql://em@/postgres?host=$PG_DIR"
    local i
    for i in $(seq 1 200); do
        if [ -S "$PG_DIR/.s.PGSQL.5432" ] && psql "$PG_URL" -qtAc 'select 1' >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$PG_PID" 2>/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
        sleep 0.05
    done
    echo "servers.sh: PostgreSQL did not start" >&2
    return 1
}

# pg_restart: starts PostgreSQL again on the data of the last pg_start (after pg_stop or
# pg_crash); crash recovery runs first when it was not shut down cleanly.
pg_restart() {
    local bin=/usr/lib/postgresql/15/bin
    unshare --user --map-user=1000 --map-group=1000 -- \
        "$bin/postgres" -D "$PG_DIR/data" -k "$PG_DIR" -c listen_addresses= -c fsync=off \
        >>"$PG_DIR/server.log" 2>&1 &
    PG_PID=$!
    local i
    for i in $(seq 1 200); do
        psql "$PG_URL" -qtAc 'select 1' >/dev/null 2>&1 && return 0
        kill -0 "$PG_PID" 2>/dev/null || { tail -20 "$PG_DIR/server.log" >&2; return 1; }
        sleep 0.05
    done
    echo "servers.sh: PostgreSQL did not restart" >&2
    return 1
}

# pg_crash: the server dies at once, as in a crash (SIGQUIT: no checkpoint, connections
# cut; the next start recovers from the write-ahead log).
pg_crash() {
    [ -n "$PG_PID" ] || return 0
    kill -QUIT "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=""
}

pg_stop() {
    [ -n "$PG_PID" ] || return 0
    kill -INT "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=""
}

# Safe under `set -e` (bench_bus.sh): no step may end the cleanup early.
servers_cleanup() {
    rmq_stop kill || true
    if [ -n "$RMQ_EPMD_PID" ]; then
        kill "$RMQ_EPMD_PID" 2>/dev/null || true
        wait "$RMQ_EPMD_PID" 2>/dev/null || true
    fi
    RMQ_EPMD_PID=""
    pg_stop || true
}
