#!/bin/bash
# Starts the node in the foreground (as the container's main process), after writing
# cassandra.yaml from the template and these variables of the official Cassandra image:
#
#   CASSANDRA_LISTEN_ADDRESS          inter-node address; "auto" (default) = the container's address
#   CASSANDRA_BROADCAST_ADDRESS       address told to other nodes (default: the listen address)
#   CASSANDRA_RPC_ADDRESS             CQL bind address (default 0.0.0.0)
#   CASSANDRA_BROADCAST_RPC_ADDRESS   CQL address told to clients (default: the broadcast address)
#   CASSANDRA_SEEDS                   seed addresses (default: the broadcast address)
#   CASSANDRA_CLUSTER_NAME            (default "Test Cluster")
#   CASSANDRA_NUM_TOKENS              (default 16)
#   CASSANDRA_ENDPOINT_SNITCH         (default SimpleSnitch)
#   CASSANDRA_DC, CASSANDRA_RACK      for GossipingPropertyFileSnitch
#   MAX_HEAP_SIZE                     -Xms/-Xmx (default 1G)
#   JVM_EXTRA_OPTS                    more JVM options, split on spaces
#
# Arguments: `cassandra` (the image's command) runs the node; anything else runs instead (bash).
set -euo pipefail
if [[ "${1:-cassandra}" != cassandra ]]; then exec "$@"; fi

home=/opt/cassandra
conf="${CASSANDRA_CONF:-/etc/cassandra}"
yaml="$conf/cassandra.yaml"

own_address() { hostname -i 2>/dev/null | awk '{print $1}'; }

listen="${CASSANDRA_LISTEN_ADDRESS:-auto}"
[[ "$listen" == auto ]] && listen="$(own_address)"
broadcast="${CASSANDRA_BROADCAST_ADDRESS:-$listen}"
rpc="${CASSANDRA_RPC_ADDRESS:-0.0.0.0}"
broadcast_rpc="${CASSANDRA_BROADCAST_RPC_ADDRESS:-$broadcast}"
seeds="${CASSANDRA_SEEDS:-$broadcast}"

sed -e "s/@@CLUSTER_NAME@@/${CASSANDRA_CLUSTER_NAME:-Test Cluster}/" \
    -e "s/@@NATIVE_PORT@@/9042/" -e "s/@@STORAGE_PORT@@/7000/" \
    "$home/conf/cassandra.yaml.template" >"$yaml"

set_key() { # sets top-level key $1 to $2, replacing the template's line or adding one
  if grep -qE "^$1:" "$yaml"; then
    sed -i -E "s|^$1:.*|$1: $2|" "$yaml"
  else
    echo "$1: $2" >>"$yaml"
  fi
}
set_key listen_address "$listen"
set_key broadcast_address "$broadcast"
set_key rpc_address "$rpc"
set_key broadcast_rpc_address "$broadcast_rpc"
set_key num_tokens "${CASSANDRA_NUM_TOKENS:-16}"
set_key endpoint_snitch "${CASSANDRA_ENDPOINT_SNITCH:-SimpleSnitch}"
sed -i -E "s|- seeds: .*|- seeds: \"$seeds\"|" "$yaml"
printf 'dc=%s\nrack=%s\n' "${CASSANDRA_DC:-dc1}" "${CASSANDRA_RACK:-rack1}" >"$conf/cassandra-rackdc.properties"
# Where cql-ready asks: the CQL bind address, or loopback when it binds every address.
if [[ "$rpc" == 0.0.0.0 ]]; then echo 127.0.0.1; else echo "$rpc"; fi >"$conf/cql-address"

# The JVM options of jvm17.options; "--add-opens X" is one line there but two words here.
args=()
while read -r option; do
  if [[ "$option" == --add-* ]]; then args+=("${option%% *}" "${option#* }"); else args+=("$option"); fi
done < <(grep -E '^\s*-' "$home/conf/jvm17.options" | sed -e 's/^\s*//' -e 's/\s*$//')
jamm="$(find "$home/lib" -name 'jamm-*.jar' | head -n1)"
mkdir -p /tmp/cassandra
# shellcheck disable=SC2206 # JVM_EXTRA_OPTS is a list of words
args+=(
  "-Xms$MAX_HEAP_SIZE" "-Xmx$MAX_HEAP_SIZE"
  "-javaagent:$jamm"
  "-Dcassandra.config=file://$yaml"
  "-Dcassandra.storagedir=/var/lib/cassandra"
  "-Dcassandra.logdir=/tmp/cassandra"
  "-Dlogback.configurationFile=file://$home/conf/logback.xml"
  "-Dcassandra-foreground=yes"
  "-Dcassandra.skip_wait_for_gossip_to_settle=0"
  "-Dcassandra.superuser_setup_delay_ms=0"
  "-Djava.io.tmpdir=/tmp/cassandra"
  "-XX:ErrorFile=/tmp/cassandra/hs_err_%p.log"
  ${JVM_EXTRA_OPTS:-}
  -cp "$conf:$home/lib/*"
  org.apache.cassandra.service.CassandraDaemon
)
echo "entrypoint: Cassandra $CASSANDRA_VERSION, listen $listen, broadcast $broadcast, CQL on $rpc:9042 (told to clients as $broadcast_rpc), seeds $seeds, heap $MAX_HEAP_SIZE"
exec java "${args[@]}"
