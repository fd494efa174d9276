#!/usr/bin/env bash
# Local services for the tests and the demo: PostgreSQL 15 + pgvector, Redis and RabbitMQ, on
# loopback ports, with their data under the repo's .work/services (nothing system-wide is started
# or configured).
#
#   scripts/services.sh start          install what is missing (apt), start all three
#   scripts/services.sh stop           stop all three
#   scripts/services.sh env            print `export FREEBIND_PG=... FREEBIND_REDIS=... FREEBIND_RABBITMQ=...` (eval it)
#   scripts/services.sh status         say what is running
#   scripts/services.sh stop-postgres|start-postgres|stop-redis|start-redis|stop-rabbitmq|start-rabbitmq   (fault tests)
#   scripts/services.sh add-rabbitmq-vhost NAME|delete-rabbitmq-vhost NAME   (a test class's own broker namespace)
#
# Ports: $FREEBIND_PG_PORT (21432), $FREEBIND_REDIS_PORT (21379) and $FREEBIND_RABBITMQ_PORT (21672,
# AMQP). The defaults sit below Linux's ephemeral range (32768-60999): a port inside it can be held at
# any moment by some outgoing connection's local end (thousands come and go during the tests), and a
# service restarted on it then fails with "address in use". Redis memory cap $FREEBIND_REDIS_MAXMEMORY (256mb, LRU eviction: it is only a cache).
# RabbitMQ's node name, Erlang distribution port, private epmd port and CLI ports derive from its
# AMQP port (see start_rabbitmq), so two checkouts never share a node. Idempotent and re-runnable.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$ROOT/.work/services"
PG_PORT="${FREEBIND_PG_PORT:-21432}"
REDIS_PORT="${FREEBIND_REDIS_PORT:-21379}"
PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR="$SVC/pg"
PG_DB=freebind
REDIS_DIR="$SVC/redis"
REDIS_MAXMEMORY="${FREEBIND_REDIS_MAXMEMORY:-256mb}"
RABBIT_PORT="${FREEBIND_RABBITMQ_PORT:-21672}"
RABBIT_DIR="$SVC/rabbitmq-$RABBIT_PORT"
RABBIT_BIN=/usr/lib/rabbitmq/bin
RABBIT_NODE="freebind-$RABBIT_PORT@localhost"
EXTRA_SOURCES=/etc/apt/sources.list.d/freebind-trixie-src.sources

log() { echo "services: $*" >&2; }

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_updated=0
apt_update() { $SUDO apt-get update -qq >/dev/null; apt_updated=1; }
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  [ "$apt_updated" -eq 1 ] || apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Runs a PostgreSQL tool as the postgres user when we are root (initdb and postgres refuse root).
as_pg() {
  # From /: the caller's directory may be closed to postgres.
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# URIs of the main Debian archive, read from the machine's deb822 list: the stanza(s) carrying this
# release's plain suite (not -security / -updates), so the mirror stays whatever the machine uses.
debian_uris() {
  local codename
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  awk -v cn="$codename" '
    BEGIN { RS=""; FS="\n" }
    {
      uris=""; ok=0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); uris=$i }
        if ($i ~ /^Suites:/) { n=split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == cn) ok=1 }
      }
      if (ok && uris != "") print uris
    }' /etc/apt/sources.list.d/debian.sources
}

remove_extra_sources() {
  if [ -f "$EXTRA_SOURCES" ]; then
    $SUDO rm -f "$EXTRA_SOURCES"
    apt_update
  fi
}

# Debian 12 ships no pgvector binary; trixie's source package builds against bookworm's PostgreSQL 15.
install_pgvector() {
  if [ -f /usr/share/postgresql/15/extension/vector.control ]; then return 0; fi
  apt_install postgresql-15 postgresql-server-dev-15 dpkg-dev build-essential
  local uris
  uris="$(debian_uris | tr '\n' ' ')"
  [ -n "${uris// }" ] || { log "no Debian archive URIs found in /etc/apt/sources.list.d/debian.sources"; exit 1; }
  trap remove_extra_sources EXIT
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uris" | $SUDO tee "$EXTRA_SOURCES" >/dev/null
  apt_update
  local build
  build="$(mktemp -d)"; chmod 755 "$build"  # apt drops to _apt for the download
  (
    cd "$build"
    apt-get source --download-only pgvector >/dev/null
    dpkg-source -x ./pgvector_*.dsc src >/dev/null
    cd src
    make -s PG_CONFIG="$PG_BIN/pg_config" >/dev/null
    $SUDO make -s PG_CONFIG="$PG_BIN/pg_config" install >/dev/null
  )
  rm -rf "$build"
  remove_extra_sources
  trap - EXIT
  [ -f /usr/share/postgresql/15/extension/vector.control ] || { log "pgvector build did not install vector.control"; exit 1; }
  log "pgvector installed"
}

install_all() {
  apt_install postgresql-15
  install_pgvector
  apt_install redis-server
  apt_install rabbitmq-server
}

# The cluster lives in .work/services/pg unless the postgres user cannot reach it (a checkout under
# a private home directory) or the socket path would pass the 107-byte limit: then in /var/tmp,
# under a name derived from the checkout so that two checkouts never share a cluster.
choose_pg_dir() {
  local fallback="/var/tmp/freebind-pg-$(echo -n "$ROOT" | sha256sum | cut -c1-12)"
  if [ -f "$fallback/data/PG_VERSION" ]; then PG_DIR="$fallback"
  elif [ ${#PG_DIR} -gt 80 ]; then PG_DIR="$fallback"
  elif [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$PG_DIR"; chown postgres: "$PG_DIR"
    runuser -u postgres -- test -w "$PG_DIR" || PG_DIR="$fallback"
  fi
  PG_DATA="$PG_DIR/data"; PG_SOCK="$PG_DIR/sock"; PG_LOG="$PG_DIR/postgres.log"
}
choose_pg_dir

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

start_postgres() {
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$PG_DIR"; fi
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  as_pg mkdir -p "$PG_SOCK"
  if ! pg_running; then
    # fsync off: the cluster is disposable test data and syncs would dominate the write benchmarks.
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_SOCK -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null
  fi
  if ! as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1; then
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$PG_DB"
  fi
  log "postgres on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
  if pg_running; then as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null; fi
  log "postgres stopped"
}

redis_running() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start_redis() {
  mkdir -p "$REDIS_DIR"
  if ! redis_running; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy allkeys-lru \
      --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
    # Waits on the condition, with a deadline generous enough for a loaded 2-core machine.
    for _ in $(seq 600); do redis_running && break; sleep 0.1; done
    redis_running || { log "redis did not answer within 60 s, see $REDIS_DIR/redis.log"; exit 1; }
  fi
  log "redis on 127.0.0.1:$REDIS_PORT"
}

# The pidfile's process, if it is still a redis-server (a stale pidfile's number may be reused).
redis_pid_alive() { [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = redis-server ]; }

stop_redis() {
  local pid=""
  [ -f "$REDIS_DIR/redis.pid" ] && pid=$(cat "$REDIS_DIR/redis.pid" 2>/dev/null || true)
  if redis_running; then redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
  # Stopped means the process is gone, not only that it stopped answering: a start right after
  # must not race the old server for the port.
  for _ in $(seq 600); do
    if ! redis_running && ! redis_pid_alive "$pid"; then break; fi
    sleep 0.1
  done
  if redis_running || redis_pid_alive "$pid"; then
    log "redis on port $REDIS_PORT did not stop within 60 s"; exit 1
  fi
  log "redis stopped"
}

# RabbitMQ runs from Debian's scripts with everything private to this checkout and port: node name,
# data and logs, Erlang cookie (HOME), the distribution port (AMQP+1000), an own epmd (AMQP+2000,
# so the machine's epmd on 4369 is neither needed nor touched) and the CLI tools' ports
# (AMQP+3000..+3009). It runs as the calling user; the package's system service is not used.
rabbit_env() {
  env HOME="$RABBIT_DIR" \
    RABBITMQ_NODENAME="$RABBIT_NODE" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$RABBIT_PORT" \
    RABBITMQ_DIST_PORT="$((RABBIT_PORT + 1000))" \
    ERL_EPMD_PORT="$((RABBIT_PORT + 2000))" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_CTL_DIST_PORT_MIN="$((RABBIT_PORT + 3000))" \
    RABBITMQ_CTL_DIST_PORT_MAX="$((RABBIT_PORT + 3009))" \
    RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia" \
    RABBITMQ_LOG_BASE="$RABBIT_DIR/log" \
    RABBITMQ_PID_FILE="$RABBIT_DIR/rabbitmq.pid" \
    "$@"
}

rabbit_running() { rabbit_env "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBIT_NODE" status >/dev/null 2>&1; }

start_rabbitmq() {
  mkdir -p "$RABBIT_DIR/log" "$RABBIT_DIR/mnesia"
  : >"$RABBIT_DIR/rabbitmq-env.conf"
  [ -f "$RABBIT_DIR/enabled_plugins" ] || echo '[].' >"$RABBIT_DIR/enabled_plugins"
  # The guest user stays loopback-only (the default); no disk alarm on small CI disks.
  printf 'loopback_users.guest = true\ndisk_free_limit.absolute = 50MB\n' >"$RABBIT_DIR/rabbitmq.conf"
  if ! rabbit_running; then
    (cd "$RABBIT_DIR" && rabbit_env setsid "$RABBIT_BIN/rabbitmq-server" >"$RABBIT_DIR/log/console.log" 2>&1 </dev/null & echo $! >"$RABBIT_DIR/server.pid")
    local started=0
    for _ in $(seq 60); do
      if rabbit_env "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBIT_NODE" await_startup --timeout 2 >/dev/null 2>&1; then started=1; break; fi
      kill -0 "$(cat "$RABBIT_DIR/server.pid")" 2>/dev/null || break   # the server gave up: say why at once
      sleep 1
    done
    if [ "$started" -eq 0 ]; then
      if grep -q eaddrinuse "$RABBIT_DIR/log/console.log" 2>/dev/null; then
        log "rabbitmq did not start: port $RABBIT_PORT or one derived from it ($((RABBIT_PORT + 1000))-$((RABBIT_PORT + 3009))) is in use; choose another with FREEBIND_RABBITMQ_PORT (see $RABBIT_DIR/log)"
      else
        log "rabbitmq did not start: $(grep -m1 -E "ERROR|\[error\]|init terminating" "$RABBIT_DIR/log/console.log" 2>/dev/null | cut -c1-200 || echo "no error logged") (see $RABBIT_DIR/log)"
      fi
      exit 1
    fi
  fi
  log "rabbitmq on 127.0.0.1:$RABBIT_PORT (node $RABBIT_NODE)"
}

stop_rabbitmq() {
  if rabbit_running; then rabbit_env "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBIT_NODE" stop "$RABBIT_DIR/rabbitmq.pid" >/dev/null 2>&1 || true; fi
  # The node's private epmd outlives it; end it too so nothing of this checkout stays behind.
  rabbit_env epmd -port "$((RABBIT_PORT + 2000))" -kill >/dev/null 2>&1 || true
  log "rabbitmq stopped"
}

# Waits for the node (a fault test may be restarting it) before touching a virtual host.
await_rabbit() {
  for _ in $(seq 120); do
    rabbit_env "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBIT_NODE" await_startup --timeout 5 >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "rabbitmq on 127.0.0.1:$RABBIT_PORT is not running (scripts/services.sh start)"; exit 1
}

# Retried as a whole: a fault test in a parallel test class may stop the node between two calls.
add_vhost() {
  for _ in $(seq 60); do
    await_rabbit
    rabbit_env "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBIT_NODE" add_vhost "$1" >/dev/null 2>&1 || true
    if rabbit_env "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBIT_NODE" set_permissions -p "$1" guest '.*' '.*' '.*' >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "cannot create the rabbitmq virtual host $1"; exit 1
}

delete_vhost() { await_rabbit; rabbit_env "$RABBIT_BIN/rabbitmqctl" -q -n "$RABBIT_NODE" delete_vhost "$1" >/dev/null 2>&1 || true; }

print_env() {
  # The ports too, so stop-/start- subcommands run from that shell (the fault tests) find the same services.
  echo "export FREEBIND_PG_PORT=$PG_PORT FREEBIND_REDIS_PORT=$REDIS_PORT FREEBIND_RABBITMQ_PORT=$RABBIT_PORT"
  echo "export FREEBIND_PG='Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=$PG_DB'"
  echo "export FREEBIND_REDIS='127.0.0.1:$REDIS_PORT'"
  echo "export FREEBIND_RABBITMQ='amqp://guest:guest@127.0.0.1:$RABBIT_PORT/'"
}

case "${1:-}" in
  start)          install_all; start_postgres; start_redis; start_rabbitmq ;;
  stop)           stop_postgres; stop_redis; stop_rabbitmq ;;
  env)            print_env ;;
  status)         pg_running && echo "postgres: running" || echo "postgres: stopped"
                  redis_running && echo "redis: running" || echo "redis: stopped"
                  rabbit_running && echo "rabbitmq: running" || echo "rabbitmq: stopped" ;;
  start-postgres) start_postgres ;;
  stop-postgres)  stop_postgres ;;
  start-redis)    start_redis ;;
  stop-redis)     stop_redis ;;
  start-rabbitmq) start_rabbitmq ;;
  stop-rabbitmq)  stop_rabbitmq ;;
  add-rabbitmq-vhost)    add_vhost "${2:?vhost name}" ;;
  delete-rabbitmq-vhost) delete_vhost "${2:?vhost name}" ;;
  *) echo "usage: $0 start|stop|env|status|start-postgres|stop-postgres|start-redis|stop-redis|start-rabbitmq|stop-rabbitmq|add-rabbitmq-vhost NAME|delete-rabbitmq-vhost NAME" >&2; exit 2 ;;
esac
