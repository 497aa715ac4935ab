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
