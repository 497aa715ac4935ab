# Broker and database provisioning for scripts/test.sh and scripts/bench.sh. Each
# `ensure_<service>` makes sure the service is installed and answering on loopback, or
# fails with a message saying why. Every function is idempotent: a second run finds the
# service running and returns at once; a fresh machine gets it installed first.
#
#   service      how it is installed                          where it listens
#   RabbitMQ     Debian's rabbitmq-server (3.10)              127.0.0.1:5672
#   Kafka        Apache Kafka 4.x jars from Maven Central     127.0.0.1:9092 (KRaft, one node)
#   NATS         nats-server 2.x via `go install`             127.0.0.1:4222 (JetStream on)
#   PostgreSQL   Debian's postgresql (15), trust auth         127.0.0.1:5432, database `test`
#   Redis        Debian's redis-server                        127.0.0.1:6379
#
# Installed things live under $WHARF_CACHE (default ~/.cache/wharf); data and logs of the
# services started here live under $WHARF_RUN (default /var/tmp/wharf).

WHARF_CACHE=${WHARF_CACHE:-$HOME/.cache/wharf}
WHARF_RUN=${WHARF_RUN:-/var/tmp/wharf}
BROKERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Pinned versions. Kafka's are in scripts/kafka/pom.xml.
NATS_SERVER_VERSION=v2.15.2

# True when a TCP port on 127.0.0.1 accepts connections.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits until a TCP port on 127.0.0.1 accepts connections.
wait_for_port() {
  local port=$1 name=$2 tries=${3:-60}
  for _ in $(seq "$tries"); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "error: $name is not answering on 127.0.0.1:$port after ${tries}s" >&2
  return 1
}

# Stops the processes whose command line matches a pattern (SIGTERM) and waits until they
# are gone; after `grace` seconds they are killed. A listener that closed is not enough:
# a process still shutting down can hold its data directory's lock.
stop_process() {
  local pattern=$1 name=$2 grace=${3:-20}
  pkill -TERM -f "$pattern" 2>/dev/null || return 0
  for _ in $(seq "$grace"); do pgrep -f "$pattern" >/dev/null || return 0; sleep 1; done
  echo "$name did not stop within ${grace}s of SIGTERM: killing it"
  pkill -KILL -f "$pattern" 2>/dev/null || true
  for _ in $(seq 10); do pgrep -f "$pattern" >/dev/null || return 0; sleep 1; done
  echo "error: $name is still running after SIGKILL" >&2
  return 1
}

APT_UPDATED=0
# Installs Debian packages that are missing (one `apt-get update` per script run).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "installing ${missing[*]} (apt)"
  if [[ $APT_UPDATED == 0 ]]; then
    apt-get update -qq || { echo "error: apt-get update failed" >&2; return 1; }
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "error: could not install ${missing[*]} (apt)" >&2; return 1; }
}

# ---- NATS ---------------------------------------------------------------------------

# nats-server with JetStream on 127.0.0.1:4222, built with `go install` from the Go
# module proxy (about a minute the first time) into $WHARF_CACHE/go/bin.
nats_server_bin() { echo "$WHARF_CACHE/nats-server-$NATS_SERVER_VERSION/nats-server"; }

install_nats_server() {
  local bin dir
  bin=$(nats_server_bin)
  [[ -x "$bin" ]] && return 0
  command -v go >/dev/null || { echo "error: go is not installed (needed to build nats-server)" >&2; return 1; }
  dir=$(dirname "$bin")
  echo "installing nats-server $NATS_SERVER_VERSION (go install; about a minute)"
  mkdir -p "$dir"
  GOBIN="$dir" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" \
    || { echo "error: could not build nats-server $NATS_SERVER_VERSION with go install" >&2; return 1; }
}

ensure_nats() {
  install_nats_server || return 1
  if port_open 4222; then
    # Something answers on 4222: make sure it is the pinned server, not an old one.
    if pgrep -f "$(nats_server_bin)" >/dev/null; then return 0; fi
    echo "error: 127.0.0.1:4222 is taken by another process (not nats-server $NATS_SERVER_VERSION);" \
      "stop it (for Debian's 2.9: pkill nats-server) and run again" >&2
    return 1
  fi
  local dir="$WHARF_RUN/nats"
  mkdir -p "$dir/store"
  nohup "$(nats_server_bin)" -a 127.0.0.1 -p 4222 -js -sd "$dir/store" >"$dir/nats-server.log" 2>&1 &
  wait_for_port 4222 nats-server 30 || { tail -20 "$dir/nats-server.log" >&2; return 1; }
}

# Restarts the nats-server this script runs (the NATS restart test calls it).
restart_nats() {
  stop_process "$(nats_server_bin)" nats-server 20 || return 1
  ensure_nats
}

# ---- RabbitMQ -----------------------------------------------------------------------

# The rabbitmq-server start script of Debian's package (the TLS test starts a node of its
# own with it, beside the one `ensure_rabbitmq` runs).
rabbitmq_server_bin() {
  echo /usr/lib/rabbitmq/bin/rabbitmq-server
}

# RabbitMQ 3.10 from Debian on 127.0.0.1:5672 (guest/guest).
# Open files the RabbitMQ node may use. RabbitMQ 3.x hands out file handles and sockets
# through its file handle cache, limited by the node's `ulimit -n`; at Debian's default
# (1024) the hundreds of queues the tests leave (each classic retry-tier queue holds
# index files) use the budget up, and every new connection then waits in
# `rabbit_networking:setup_socket` for a handle: the port accepts, the AMQP handshake
# never comes, and clients time out (seen as connect timeouts in whole test files).
# 65536, or this shell's hard limit if lower (raising it needs privileges we may lack).
RABBITMQ_NOFILE=$(ulimit -Hn)
if [[ "$RABBITMQ_NOFILE" == unlimited || "$RABBITMQ_NOFILE" -gt 65536 ]]; then
  RABBITMQ_NOFILE=65536
fi

# The shared node's command line (a test's own node has another home).
RABBITMQ_PATTERN='beam.smp.*-home /var/lib/rabbitmq'

# The shared node's soft limit on open files (nothing when it does not run here).
rabbitmq_nofile() {
  local pid
  pid=$(pgrep -f "$RABBITMQ_PATTERN" | head -1) || true
  [[ -n "$pid" ]] || return 0
  awk '/Max open files/ {print $4}' "/proc/$pid/limits" 2>/dev/null || true
}

ensure_rabbitmq() {
  local nofile
  nofile=$(rabbitmq_nofile) || nofile=
  if port_open 5672; then
    # A broker this script did not start (another user's, a container's): used as it is.
    [[ -z "$nofile" || "$nofile" -ge "$RABBITMQ_NOFILE" ]] && return 0
    echo "restarting RabbitMQ: it runs with ${nofile} open files, it needs ${RABBITMQ_NOFILE}"
    stop_process "$RABBITMQ_PATTERN" rabbitmq-server 30 || return 1
  fi
  apt_install rabbitmq-server || return 1
  # rabbitmq-server starts the node through `su rabbitmq`, whose pam_limits sets the
  # limits: the node gets the ones written here.
  echo "rabbitmq - nofile $RABBITMQ_NOFILE" > /etc/security/limits.d/wharf-rabbitmq.conf
  # The node may be up with the app stopped (after `rabbitmqctl stop_app`).
  if rabbitmqctl -q ping >/dev/null 2>&1; then
    rabbitmqctl -q start_app || { echo "error: could not start the RabbitMQ app" >&2; return 1; }
  else
    rabbitmq-server -detached || { echo "error: could not start rabbitmq-server" >&2; return 1; }
  fi
  rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || true
  wait_for_port 5672 rabbitmq-server 120 || {
    tail -20 /var/log/rabbitmq/*.log >&2 2>/dev/null
    return 1
  }
}

# Restarts the RabbitMQ app (connections dropped, queues kept; the chaos harness calls it).
restart_rabbitmq() {
  rabbitmqctl -q stop_app || return 1
  ensure_rabbitmq
}

# ---- Kafka --------------------------------------------------------------------------

# Build dependencies of the Kafka adapter: rdkafka builds the bundled librdkafka with
# cmake, and librdkafka's cmake build wants the curl headers even with curl off
# (librdkafka #5135).
# OpenSSL headers: librdkafka's SSL (the `ssl` feature, on in the workspace's builds).
ensure_kafka_build_deps() {
  if command -v cmake >/dev/null && command -v pkg-config >/dev/null \
    && [[ -f /usr/include/x86_64-linux-gnu/curl/curl.h || -f /usr/include/curl/curl.h ]] \
    && [[ -f /usr/include/openssl/ssl.h ]]; then
    return 0
  fi
  apt_install cmake pkg-config libcurl4-openssl-dev libssl-dev
}

# The folder holding Apache Kafka's jars, named after a hash of the pom so a version
# change fetches anew.
kafka_libs() {
  local sum
  sum=$(cat "$BROKERS_DIR/kafka/pom.xml" | sha256sum | cut -c1-12)
  echo "$WHARF_CACHE/kafka-$sum/libs"
}

install_kafka() {
  local libs
  libs=$(kafka_libs)
  [[ -f "$libs/.complete" ]] && return 0
  command -v java >/dev/null || { echo "error: java is not installed (needed for Apache Kafka)" >&2; return 1; }
  command -v mvn >/dev/null || { echo "error: mvn is not installed (fetches Apache Kafka from Maven Central)" >&2; return 1; }
  echo "installing Apache Kafka (Maven Central, pinned in scripts/kafka/pom.xml; about a minute)"
  rm -rf "$libs"
  (cd "$BROKERS_DIR/kafka" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$libs") \
    || { echo "error: could not fetch Apache Kafka's jars with Maven" >&2; return 1; }
  touch "$libs/.complete"
}

# Starts java with Kafka's classpath: `kafka_java <main class> <args>`.
kafka_java() {
  java -Dlog4j2.configurationFile="$BROKERS_DIR/kafka/log4j2.properties" -cp "$(kafka_libs)/*" "$@"
}

# One combined broker+controller (KRaft) on 127.0.0.1:9092 (plaintext) and 9094
# (SASL/PLAIN, for the credential tests), controller on 9093. Data
# in $WHARF_RUN/kafka/data (formatted once), log in $WHARF_RUN/kafka/kafka.log.
ensure_kafka() {
  ensure_kafka_build_deps || return 1
  if port_open 9092; then
    port_open 9094 && return 0
    # Started from an older server.properties (no SASL listener on 9094): restart it.
    echo "restarting Apache Kafka with the current server.properties"
    stop_kafka || return 1
  fi
  # A broker still shutting down holds the data directory's lock: a new one would exit.
  if pgrep -f "$(shared_kafka_pattern)" >/dev/null; then stop_kafka || return 1; fi
  install_kafka || return 1
  local dir="$WHARF_RUN/kafka"
  mkdir -p "$dir"
  sed "s|@DATA@|$dir/data|" "$BROKERS_DIR/kafka/server.properties" >"$dir/server.properties"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    format_kafka_storage "$dir" || return 1
  fi
  # 1 GiB heap: plenty for the tests' topics, and leaves the 2-core machine to the tests.
  launch_kafka "$dir" -Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 >/dev/null
  wait_for_port 9092 "Apache Kafka" 90 || { tail -30 "$dir/kafka.log" >&2; return 1; }
  # The port opens before the broker has registered with its controller; wait for a
  # metadata answer.
  for _ in $(seq 60); do
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "error: Apache Kafka listens on 9092 but does not answer metadata requests" >&2
  tail -30 "$dir/kafka.log" >&2
  return 1
}

# Starts a one-node Apache Kafka (KRaft) of a test's own beside the shared one: formats
# <dir>/data with the <dir>/server.properties the test wrote (its `log.dirs` must be
# <dir>/data) and runs the broker in the background, in a session of its own, logging to
# <dir>/kafka.log. Prints its pid, which is also its process group's (the test kills the
# group). The Kafka TLS test runs its SSL-only broker this way.
start_kafka_node() {
  local dir=$1
  install_kafka >/dev/null || return 1
  format_kafka_storage "$dir" || return 1
  launch_kafka "$dir" -Xms128m -Xmx384m -XX:+UseSerialGC
}

# Formats the storage of the Kafka node whose configuration is <dir>/server.properties,
# with a new random cluster id (16 random bytes, base64url: what `kafka-storage
# random-uuid` prints, without starting a JVM for it).
format_kafka_storage() {
  local dir=$1 id
  id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
  # `--cluster-id=`: a random id may start with `-`, which would read as an option.
  kafka_java kafka.tools.StorageTool format --standalone --cluster-id="$id" -c "$dir/server.properties" \
    >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; echo "error: could not format Kafka's storage in $dir" >&2; return 1; }
}

# Runs the Kafka node of <dir>/server.properties in the background, in a session of its
# own, logging to <dir>/kafka.log, with the JVM options given after <dir>. Prints its pid
# (also its process group's).
launch_kafka() {
  local dir=$1
  shift
  setsid java "$@" -Dlog4j2.configurationFile="$BROKERS_DIR/kafka/log4j2.properties" \
    -cp "$(kafka_libs)/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 </dev/null &
  echo $!
}

# Restarts Apache Kafka (data kept; the chaos harness calls it).
restart_kafka() {
  stop_kafka || return 1
  ensure_kafka
}

# Stops Apache Kafka and waits until the process is gone. The listener closes early in a
# graceful shutdown, but a single-node KRaft broker can then wait on its own quorum for
# minutes while it still holds the data directory's lock: after 20 s it is killed (the log
# is recovered on start, as after a crash).
stop_kafka() {
  stop_process "$(shared_kafka_pattern)" "Apache Kafka" 20
}

# The command line of the shared broker only: a test's own Kafka node (`start_kafka_node`)
# runs from another server.properties, and stopping the shared one leaves it alone.
shared_kafka_pattern() {
  echo "kafka\\.Kafka $WHARF_RUN/kafka/server\\.properties"
}

# ---- PostgreSQL ---------------------------------------------------------------------

# PostgreSQL from Debian on 127.0.0.1:5432, trust auth for loopback, a `test` database.
ensure_postgres() {
  apt_install postgresql || return 1
  if ! port_open 5432; then
    local ver
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    [[ -n "$ver" ]] || { echo "error: no PostgreSQL cluster in /etc/postgresql" >&2; return 1; }
    local hba="/etc/postgresql/$ver/main/pg_hba.conf"
    if ! grep -q "wharf-test" "$hba"; then
      # Loopback only, no password: the tests connect as postgres@127.0.0.1.
      sed -i '1i host all all 127.0.0.1/32 trust # wharf-test\nhost all all ::1/128 trust # wharf-test' "$hba"
    fi
    pg_ctlcluster "$ver" main start || { echo "error: could not start PostgreSQL $ver" >&2; return 1; }
    wait_for_port 5432 PostgreSQL 60 || return 1
  fi
  for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL does not accept connections" >&2; return 1; }
  if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -qc "create database test" \
      || { echo "error: could not create the PostgreSQL database 'test' (is trust auth on for 127.0.0.1?)" >&2; return 1; }
  fi
}

# ---- Redis --------------------------------------------------------------------------

# Redis from Debian on 127.0.0.1:6379, no persistence.
ensure_redis() {
  apt_install redis-server || return 1
  if ! port_open 6379; then
    local dir="$WHARF_RUN/redis"
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --dir "$dir" \
      --save '' --appendonly no --logfile "$dir/redis.log" \
      || { echo "error: could not start redis-server" >&2; return 1; }
    wait_for_port 6379 Redis 30 || return 1
  fi
  for _ in $(seq 30); do
    [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]] && return 0
    sleep 1
  done
  echo "error: Redis on 127.0.0.1:6379 does not answer PING" >&2
  return 1
}
