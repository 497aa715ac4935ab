# Broker provisioning for scripts/test.sh. Each `ensure_<broker>` makes sure the broker
# is installed and answering on loopback, or fails with a message saying why.

# Waits until a TCP port on 127.0.0.1 accepts connections.
wait_for_port() {
  local port=$1 name=$2 tries=${3:-60}
  for _ in $(seq "$tries"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  echo "error: $name is not answering on 127.0.0.1:$port" >&2
  return 1
}

# nats-server with JetStream on 127.0.0.1:4222 (the NATS adapter's broker tests).
ensure_nats() {
  if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
    return 0
  fi
  if [[ ! -x /usr/sbin/nats-server ]]; then
    echo "installing nats-server (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null \
      || { echo "error: could not install nats-server" >&2; return 1; }
  fi
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log \
    || { echo "error: could not start nats-server" >&2; return 1; }
  wait_for_port 4222 nats-server 30
}

# RabbitMQ on 127.0.0.1:5672 (the RabbitMQ adapter's broker tests and example).
ensure_rabbitmq() {
  if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    return 0
  fi
  if [[ ! -x /usr/sbin/rabbitmq-server ]]; then
    echo "installing rabbitmq-server (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null \
      || { echo "error: could not install rabbitmq-server" >&2; return 1; }
  fi
  # The node may be up with the app stopped (after `rabbitmqctl stop_app`).
  if rabbitmqctl -q ping >/dev/null 2>&1; then
    rabbitmqctl -q start_app || { echo "error: could not start the RabbitMQ app" >&2; return 1; }
  else
    rabbitmq-server -detached || { echo "error: could not start rabbitmq-server" >&2; return 1; }
  fi
  rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || true
  wait_for_port 5672 rabbitmq-server 120
}

# Build dependencies of the Kafka adapter: rdkafka builds the bundled librdkafka with
# cmake, and librdkafka's cmake build wants the curl headers even with curl off
# (librdkafka #5135).
ensure_kafka_build_deps() {
  if command -v cmake >/dev/null && [[ -f /usr/include/x86_64-linux-gnu/curl/curl.h || -f /usr/include/curl/curl.h ]]; then
    return 0
  fi
  echo "installing cmake and libcurl4-openssl-dev (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake libcurl4-openssl-dev >/dev/null \
    || { echo "error: could not install cmake / libcurl4-openssl-dev" >&2; return 1; }
}

# tansu 0.6.0 (a Kafka-compatible broker) with in-memory storage on 127.0.0.1:9092.
# Built from crates.io once per machine (about 15 minutes on 2 cores); memory storage
# means every start is empty, and tests create their topics explicitly.
TANSU_VERSION=0.6.0
ensure_kafka() {
  ensure_kafka_build_deps || return 1
  if (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
    return 0
  fi
  local tansu="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
  if [[ ! -x "$tansu" ]] || ! "$tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    echo "installing tansu $TANSU_VERSION (cargo install; about 15 minutes on 2 cores)"
    cargo install -q tansu --version "$TANSU_VERSION" --features dynostore --locked \
      || { echo "error: could not install tansu" >&2; return 1; }
  fi
  # tansu reads a .env from its working directory: run it from an empty one.
  local dir=/tmp/wharf-tansu
  mkdir -p "$dir"
  (cd "$dir" && nohup "$tansu" broker --storage-engine memory://tansu/ \
    --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    --cluster-id wharf-test >"$dir/tansu.log" 2>&1 &) \
    || { echo "error: could not start tansu" >&2; return 1; }
  wait_for_port 9092 tansu 60 || { tail -20 "$dir/tansu.log" >&2; return 1; }
}

# Restarts tansu with empty memory storage (benchmarks: a tansu holding every test
# topic is slower and busier than a fresh one). Only touches a tansu this script runs.
restart_tansu() {
  if pkill -f "tansu broker --storage-engine memory://" 2>/dev/null; then
    for _ in $(seq 30); do
      (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null || break
      sleep 1
    done
  fi
  ensure_kafka
}
