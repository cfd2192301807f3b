# `scripts/cassandra cluster ...`: a local 3-node Cassandra 5.0 cluster (sourced by
# scripts/cassandra, whose helpers it uses: each node is the single-node machinery pointed at its
# own address, folder, JMX port and conf).
#
#   scripts/cassandra cluster start        start every node that is down (node 1, the seed, first,
#                                          then the others together), and wait until each answers
#                                          CQL and sees every other node up
#   scripts/cassandra cluster stop         stop every node (TERM, then KILL after 30 s)
#   scripts/cassandra cluster status       one line per node; exit 0 only when all are up
#   scripts/cassandra cluster kill N       kill -9 node N (1-based), as a crash would
#   scripts/cassandra cluster restart N    stop node N if it runs, start it, wait until the
#                                          cluster sees it up
#   scripts/cassandra cluster wipe         stop every node and delete the cluster's data
#   scripts/cassandra cluster cql N [ARGS] cqlsh against node N
#   scripts/cassandra cluster nodetool N ARGS  nodetool against node N
#   scripts/cassandra cluster nodes        the CQL contact points, comma-separated (for --cql-nodes)
#
# Node N listens on the N-th address of CASSANDRA_CLUSTER_ADDRESSES (default 127.0.0.1,
# 127.0.0.2, 127.0.0.3: Linux answers all of 127/8 on loopback), CQL on CASSANDRA_PORT (9042) and
# inter-node traffic on CASSANDRA_STORAGE_PORT (7000) of that address, JMX on 127.0.0.1 port
# CASSANDRA_CLUSTER_JMX_BASE + N (7201, 7202, 7203). Its state is in .cassandra/cluster/nodeN.
# One data center, `datacenter1` (GossipingPropertyFileSnitch, cassandra-rackdc.properties):
#   timebucket migrate up --cql-nodes "$(scripts/cassandra cluster nodes)" \
#     --replication NetworkTopologyStrategy:datacenter1=3
#
# Node 1 shares 127.0.0.1:9042 with the single node of `scripts/cassandra start`: stop that one
# first, or put the cluster on other addresses, e.g.
# CASSANDRA_CLUSTER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13 (give the same variable to the
# cluster tests and benchmarks).
#
# Environment: CASSANDRA_CLUSTER_ADDRESSES, CASSANDRA_CLUSTER_HEAP (heap per node, default 768m),
# CASSANDRA_CLUSTER_JMX_BASE (default 7200), CASSANDRA_CLUSTER_RING_DELAY_MS (default 2000: how
# long a starting node listens to gossip before it joins; Cassandra's 30 s suits real networks,
# loopback needs far less), and the single node's CASSANDRA_PORT, CASSANDRA_STORAGE_PORT,
# CASSANDRA_START_TIMEOUT, CASSANDRA_HOME.

CLUSTER_DIR="$HOME_DIR/cluster"
CLUSTER_HEAP="${CASSANDRA_CLUSTER_HEAP:-768m}"
CLUSTER_JMX_BASE="${CASSANDRA_CLUSTER_JMX_BASE:-7200}"
CLUSTER_RING_DELAY_MS="${CASSANDRA_CLUSTER_RING_DELAY_MS:-2000}"
IFS=, read -r -a CLUSTER_NODES <<<"${CASSANDRA_CLUSTER_ADDRESSES:-127.0.0.1,127.0.0.2,127.0.0.3}"
# How long `start` and `restart` wait for every node to see every other one up.
CLUSTER_AGREE_TIMEOUT=120

cluster_check_addresses() {
  local a
  [[ ${#CLUSTER_NODES[@]} -ge 1 ]] || die "CASSANDRA_CLUSTER_ADDRESSES names no address"
  for a in "${CLUSTER_NODES[@]}"; do
    [[ "$a" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] \
      || die "CASSANDRA_CLUSTER_ADDRESSES: '$a' is not a loopback IPv4 address (127.x.y.z)"
  done
}

cluster_node() { # points the node globals (paths, address, JMX port, heap, conf) at node $1
  local n="$1"
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= ${#CLUSTER_NODES[@]})) \
    || die "no node '$n': the cluster has nodes 1 to ${#CLUSTER_NODES[@]}"
  NODE="$n"
  HOST="${CLUSTER_NODES[n - 1]}"
  NODE_DIR="$CLUSTER_DIR/node$n"
  CONF_DIR="$NODE_DIR/conf"
  DATA_DIR="$NODE_DIR/data"
  LOG_DIR="$NODE_DIR/logs"
  TMP_DIR="$NODE_DIR/tmp"
  PID_FILE="$NODE_DIR/cassandra.pid"
  JMX_PORT=$((CLUSTER_JMX_BASE + n))
  HEAP="$CLUSTER_HEAP"
  CLUSTER_NAME=timebucket-cluster
  EXTRA_JVM_ARGS=(
    "-Dcassandra.ring_delay_ms=$CLUSTER_RING_DELAY_MS"
    "-Dcassandra-rackdc.properties=file://$SUPPORT/cassandra-rackdc.properties"
  )
}

listener_pid() { # pid of whatever listens on $1:$2 (or on every address at port $2), if any
  local address="$1" port="$2"
  command -v ss >/dev/null 2>&1 || return 1
  ss -ltnpH "sport = :$port" 2>/dev/null \
    | awk -v a="$address:$port" -v p=":$port" \
        '$4 == a || $4 == "0.0.0.0" p || $4 == "*" p || $4 == "[::]" p { print; exit }' \
    | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2
}

cluster_refuse_taken() { # dies with what to do when a port of node $NODE belongs to someone else
  local port pid owner
  for port in "$PORT" "$STORAGE_PORT"; do
    pid="$(listener_pid "$HOST" "$port")" || true
    [[ -n "$pid" ]] || continue
    owner="pid $pid"
    if [[ -r "/proc/$pid/cmdline" ]]; then
      owner+=", $(tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n 's/^-Dcassandra.storagedir=//p' | head -n1)"
    fi
    echo "cassandra: error: node $NODE of the cluster needs $HOST:$port, which another process holds ($owner)." >&2
    if [[ "$HOST" == 127.0.0.1 ]]; then
      echo "  That is most likely the single development node of 'scripts/cassandra start'. Either stop it" >&2
      echo "  ('scripts/cassandra stop' in the checkout that started it), or run the cluster on other" >&2
      echo "  loopback addresses, with the same variable for the tests and benchmarks:" >&2
    else
      echo "  Stop it, or choose other addresses:" >&2
    fi
    echo "    CASSANDRA_CLUSTER_ADDRESSES=127.0.0.11,127.0.0.12,127.0.0.13 scripts/cassandra cluster start" >&2
    exit 1
  done
}

cluster_launch() { # starts node $NODE (already pointed at) unless it runs; waits for CQL
  local pid
  if pid="$(node_pid)"; then
    if cql_ping >/dev/null; then
      log "node $NODE: up on $HOST:$PORT, pid $pid"
    else
      log "node $NODE: pid $pid is running but CQL does not answer yet: waiting for it"
      wait_for_cql "$pid" "$(now)" "we started waiting"
    fi
    return 0
  fi
  rm -f "$PID_FILE"
  cluster_refuse_taken
  write_conf cluster.yaml.template \
    "s/@@ADDRESS@@/$HOST/g" \
    "s/@@SEEDS@@/${CLUSTER_NODES[0]}:$STORAGE_PORT/g"
  # A starting node first asks the seed for the ring (gossip's shadow round) and gives up after
  # the ring delay, 2 s here; on a loaded machine the answer can come later ("Unable to gossip
  # with any peers"), and starting again is all it takes. Any other failure ends the start.
  # (In the background and waited for, so that `set -e` holds inside launch_node.)
  local attempt
  for attempt in 1 2 3; do
    log "node $NODE:"
    (launch_node) &
    if wait $!; then
      return 0
    fi
    grep -q "Unable to gossip with any peers" "$LOG_DIR/stdout.log" 2>/dev/null || exit 1
    ((attempt < 3)) || break
    log "node $NODE: the seed did not answer its gossip in time (a busy machine?); starting it again (try $((attempt + 1)) of 3)"
  done
  exit 1
}

# Every node, as coordinator, reads a table replicated to every node at consistency ALL: that
# succeeds only once each node has the others marked up in gossip (a node that answers CQL may
# not yet be known to the rest, and a killed node stays "up" to the others for a few seconds).
cluster_wait_agreement() {
  local deadline=$((SECONDS + CLUSTER_AGREE_TIMEOUT)) n pending t0
  t0="$(now)"
  local probe="CONSISTENCY ALL; SELECT keyspace_name FROM system_schema.keyspaces LIMIT 1; \
SELECT * FROM system_distributed.repair_history LIMIT 1;"
  while true; do
    pending=()
    for n in $(seq ${#CLUSTER_NODES[@]}); do
      (
        cluster_node "$n"
        cqlsh --connect-timeout 5 --request-timeout 10 -e "$probe" >/dev/null 2>&1
      ) || pending+=("$n")
    done
    if [[ ${#pending[@]} -eq 0 ]]; then
      log "cluster: ${#CLUSTER_NODES[@]} nodes up, each sees every other ($(since "$t0") s)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      die "after $CLUSTER_AGREE_TIMEOUT s, node(s) ${pending[*]} still cannot reach every replica at consistency ALL; see $CLUSTER_DIR/node*/logs"
    fi
    sleep 1
  done
}

cluster_start() {
  local n t0
  t0="$(now)"
  mkdir -p "$CLUSTER_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CLUSTER_DIR/start.lock"
    flock 9
  fi
  # Refuse before starting anything: a taken address is found out now, not after node 1 is up.
  for n in $(seq ${#CLUSTER_NODES[@]}); do
    cluster_node "$n"
    node_pid >/dev/null || cluster_refuse_taken
  done
  fetch
  # Node 1, the seed, first; then the others together: they do not bootstrap (no data to
  # stream), so they may join at once, and their JVMs start in parallel.
  cluster_node 1
  cluster_launch
  local pids=() failed=0
  for n in $(seq 2 ${#CLUSTER_NODES[@]}); do
    (
      cluster_node "$n"
      cluster_launch
    ) &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || failed=1; done
  ((failed == 0)) || die "a node did not start; see $CLUSTER_DIR/node*/logs"
  cluster_wait_agreement
  log "cluster: started in $(since "$t0") s; contact points $(cluster_contact_points)"
}

cluster_stop() {
  local n pids=()
  for n in $(seq ${#CLUSTER_NODES[@]}); do
    (
      cluster_node "$n"
      if pid="$(node_pid)"; then
        stop_pid "$pid" | sed "s/^cassandra: /cassandra: node $n: /"
      fi
      rm -f "$PID_FILE"
    ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  log "cluster: stopped"
}

cluster_status() {
  local n version pid down=0
  for n in $(seq ${#CLUSTER_NODES[@]}); do
    cluster_node "$n"
    if pid="$(node_pid)" && version="$(cql_ping)"; then
      echo "node$n $HOST:$PORT up $version pid $pid"
    elif pid="$(node_pid)"; then
      echo "node$n $HOST:$PORT starting pid $pid"
      down=1
    else
      echo "node$n $HOST:$PORT down"
      down=1
    fi
  done
  return "$down"
}

cluster_kill() {
  local pid i
  cluster_node "${1:-}"
  pid="$(node_pid)" || die "node $NODE is not running"
  kill -KILL "$pid"
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$PID_FILE"
  log "node $NODE: killed (SIGKILL) pid $pid"
}

cluster_restart() {
  local pid
  cluster_node "${1:-}"
  if pid="$(node_pid)"; then
    stop_pid "$pid"
  fi
  fetch
  cluster_launch
  cluster_wait_agreement
}

cluster_contact_points() {
  local a out=()
  for a in "${CLUSTER_NODES[@]}"; do out+=("$a:$PORT"); done
  (IFS=,; echo "${out[*]}")
}

cmd_cluster() {
  cluster_check_addresses
  local action="${1:-}"
  shift || true
  case "$action" in
    start) cluster_start ;;
    stop) cluster_stop ;;
    status) cluster_status ;;
    kill) cluster_kill "$@" ;;
    restart) cluster_restart "$@" ;;
    wipe) cluster_stop; rm -rf "$CLUSTER_DIR"/node*; log "cluster: deleted $CLUSTER_DIR/node*" ;;
    cql) cluster_node "${1:-}"; shift; cmd_cql "$@" ;;
    nodetool) cluster_node "${1:-}"; shift; cmd_nodetool "$@" ;;
    nodes) cluster_contact_points ;;
    *)
      sed -n '5,17p' "$SUPPORT/cluster.sh" | sed 's/^# \{0,1\}//'
      [[ -n "$action" && "$action" != -h && "$action" != --help && "$action" != help ]] && exit 2
      exit 0
      ;;
  esac
}
