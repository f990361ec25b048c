# shellcheck shell=bash
#
# deploy/local/cluster.sh — a local Kafka cluster of MH_KAFKA_BROKERS_N KRaft nodes (each
# broker and controller in one JVM, the controller quorum made of all of them), for the
# replication and failover tests. Sourced by deploy/local/lib.sh, whose mh_kafka_up,
# mh_kafka_down, mh_kafka_kill and mh_brokers use it when MH_KAFKA_BROKERS_N > 1.
#
# Node N (1-based) listens on 127.0.0.1:(MH_KAFKA_CLUSTER_PORT + 2(N-1)) for clients and
# the next port for the controller quorum: 19092/19093, 19094/19095, 19096/19097 by
# default, so a cluster runs beside the single broker of 9092/9093. Node N keeps its
# config, data, logs and pid file in $MH_KAFKA_CLUSTER_HOME/N. The jars are the single
# broker's ($MH_KAFKA_HOME/libs, mh_kafka_libs).
#
# Topics are created with replication factor MH_KAFKA_CLUSTER_RF (default: 3, at most
# the node count) and min.insync.replicas MH_KAFKA_CLUSTER_MIN_ISR (default: 2, at most
# RF); the internal topics (__consumer_offsets, __transaction_state) likewise.
#
# Environment (all optional):
#   MH_KAFKA_BROKERS_N         nodes; 1 (the default) is the single broker of lib.sh
#   MH_KAFKA_CLUSTER_PORT      first node's client port              (default 19092)
#   MH_KAFKA_CLUSTER_HEAP      each node's JVM heap                  (default 384m)
#   MH_KAFKA_CLUSTER_RF, MH_KAFKA_CLUSTER_MIN_ISR   see above

MH_KAFKA_CLUSTER_HOME="$MH_LOCAL/kafka-cluster"
MH_KAFKA_CLUSTER_PORT="${MH_KAFKA_CLUSTER_PORT:-19092}"
MH_KAFKA_CLUSTER_TOOL="$MH_ROOT/deploy/local/kafka_cluster.py"

# mh_kafka_cluster_mode: status 0 when the local stack is a cluster (MH_KAFKA_BROKERS_N > 1).
mh_kafka_cluster_mode() {
  local n=${MH_KAFKA_BROKERS_N:-1}
  [[ $n =~ ^[0-9]+$ ]] && ((n > 1))
}

mh_kafka_cluster_n() { printf '%s\n' "${MH_KAFKA_BROKERS_N:-1}"; }

# mh_kafka_cluster_select N: use an N-node cluster from now on (exported, for the
# programs and scripts this shell starts). Unless MH_CONFIG was given, the local config
# becomes $MH_LOCAL/mailhook-cluster.ini, written for the cluster by mh_write_config.
mh_kafka_cluster_select() {
  [[ $1 =~ ^[1-9][0-9]*$ ]] || {
    mh_err "the number of Kafka nodes must be a positive number, not '$1'"
    return 1
  }
  export MH_KAFKA_BROKERS_N=$1
  if mh_kafka_cluster_mode && [[ -z ${MH_CONFIG_GIVEN:-} ]]; then
    # shellcheck disable=SC2034 # read by lib.sh and the scripts that source it
    MH_CONFIG="$MH_LOCAL/mailhook-cluster.ini"
  fi
}

# mh_kafka_cluster_nodes: the node numbers that have a folder (started at least once).
mh_kafka_cluster_nodes() {
  local d
  for d in "$MH_KAFKA_CLUSTER_HOME"/[0-9]*; do
    [[ -d $d ]] && basename "$d"
  done | sort -n
}

# mh_kafka_cluster_rf / mh_kafka_cluster_min_isr: the replication settings in force.
mh_kafka_cluster_rf() {
  local n rf
  n=$(mh_kafka_cluster_n)
  rf=${MH_KAFKA_CLUSTER_RF:-3}
  ((rf <= n)) || rf=$n
  printf '%s\n' "$rf"
}
mh_kafka_cluster_min_isr() {
  local rf isr
  rf=$(mh_kafka_cluster_rf)
  isr=${MH_KAFKA_CLUSTER_MIN_ISR:-2}
  ((isr <= rf)) || isr=$rf
  printf '%s\n' "$isr"
}

# mh_kafka_node_port N / mh_kafka_node_controller_port N
mh_kafka_node_port() { printf '%s\n' $((MH_KAFKA_CLUSTER_PORT + 2 * ($1 - 1))); }
mh_kafka_node_controller_port() { printf '%s\n' $((MH_KAFKA_CLUSTER_PORT + 2 * ($1 - 1) + 1)); }
mh_kafka_node_home() { printf '%s\n' "$MH_KAFKA_CLUSTER_HOME/$1"; }

# mh_kafka_cluster_brokers: the bootstrap list of every node.
mh_kafka_cluster_brokers() {
  local i out=""
  for ((i = 1; i <= $(mh_kafka_cluster_n); i++)); do
    out+="${out:+,}127.0.0.1:$(mh_kafka_node_port "$i")"
  done
  printf '%s\n' "$out"
}

# mh_kafka_node_write_config N: node N's server.properties and log4j.properties.
mh_kafka_node_write_config() {
  local node=$1 home voters="" i n rf isr
  home=$(mh_kafka_node_home "$node")
  n=$(mh_kafka_cluster_n)
  rf=$(mh_kafka_cluster_rf)
  isr=$(mh_kafka_cluster_min_isr)
  for ((i = 1; i <= n; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$(mh_kafka_node_controller_port "$i")"
  done
  mkdir -p "$home/data"
  cat >"$home/server.properties" <<EOF
# Node $node of mailhook's local $n-node Kafka cluster (KRaft: broker and controller in one
# process, every node a voter). Written by deploy/local/cluster.sh on every start.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(mh_kafka_node_port "$node"),CONTROLLER://127.0.0.1:$(mh_kafka_node_controller_port "$node")
advertised.listeners=PLAINTEXT://127.0.0.1:$(mh_kafka_node_port "$node")
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$home/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
# A crashed node is fenced, and its partitions get new leaders, within 3 s.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
# A follower that stopped fetching leaves the ISR after 10 s (default 30 s).
replica.lag.time.max.ms=10000
# Never elect a replica that may lack acknowledged records.
unclean.leader.election.enable=false
# Leaders go back to the preferred replica after a restart, so every node leads again.
auto.leader.rebalance.enable=true
leader.imbalance.check.interval.seconds=10
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
log.retention.hours=168
log.segment.bytes=134217728
EOF
  sed "s|$MH_KAFKA_HOME/server.log|$home/server.log|" "$MH_KAFKA_HOME/log4j.properties" \
    >"$home/log4j.properties"
}

# mh_kafka_node_running N: status 0 and node N's pid on stdout when it runs.
mh_kafka_node_running() {
  local home pid
  home=$(mh_kafka_node_home "$1")
  pid=$(mh_pidfile_pid "$home/kafka.pid") || return 1
  grep -qa 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# mh_kafka_node_start N: start node N unless it runs (formatting its storage the first
# time); does not wait for it.
mh_kafka_node_start() {
  local node=$1 home pid port cport
  home=$(mh_kafka_node_home "$node")
  if pid=$(mh_kafka_node_running "$node"); then return 0; fi
  port=$(mh_kafka_node_port "$node")
  cport=$(mh_kafka_node_controller_port "$node")
  if mh_port_open 127.0.0.1 "$port" || mh_port_open 127.0.0.1 "$cport"; then
    mh_err "port $port or $cport (Kafka node $node) is taken by a process this stack did not start;"
    mh_err "stop it or set MH_KAFKA_CLUSTER_PORT"
    return 1
  fi
  mh_kafka_node_write_config "$node"
  local cp="$MH_KAFKA_HOME/libs/*"
  local jvm=(java "-Xmx${MH_KAFKA_CLUSTER_HEAP:-384m}" -Xss1m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:+ExitOnOutOfMemoryError -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$home/log4j.properties" "-Dkafka.logs.dir=$home")
  if [[ ! -f $home/data/meta.properties ]]; then
    mh_log "formatting Kafka node $node (cluster id $(cat "$MH_KAFKA_CLUSTER_HOME/cluster-id"))"
    "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format --ignore-formatted \
      -t "$(cat "$MH_KAFKA_CLUSTER_HOME/cluster-id")" -c "$home/server.properties" \
      </dev/null >>"$home/format.log" 2>&1 || {
      mh_err "formatting Kafka node $node failed"
      mh_tail "$home/format.log"
      return 1
    }
  fi
  mh_log "starting Kafka node $node on 127.0.0.1:$port (controller :$cport)"
  mh_rotate_log "$home/stdout.log"
  # shellcheck disable=SC2086 # MH_KAFKA_JAVA_OPTS is a word list on purpose
  mh_spawn "$home/kafka.pid" "$home/stdout.log" \
    "${jvm[@]}" ${MH_KAFKA_JAVA_OPTS:-} -cp "$cp" kafka.Kafka "$home/server.properties"
}

# mh_kafka_cluster_py ARGS...: deploy/local/kafka_cluster.py against the cluster.
mh_kafka_cluster_py() {
  "$MH_VENV/bin/python" "$MH_KAFKA_CLUSTER_TOOL" --brokers "$(mh_kafka_cluster_brokers)" "$@"
}

# mh_kafka_cluster_wait TIMEOUT [FULL [NODE]]: wait until every node is registered and
# unfenced (FULL=1: and no partition is under-replicated; NODE: and that node answers on
# its own port). Status 2 when a started node died.
mh_kafka_cluster_wait() {
  local timeout=$1 full=${2:-0} node=${3:-} deadline i args=()
  deadline=$((SECONDS + timeout))
  ((full)) && args+=(--in-sync)
  [[ -z $node ]] || args+=(--node "$node" --node-addr "127.0.0.1:$(mh_kafka_node_port "$node")")
  while :; do
    for ((i = 1; i <= $(mh_kafka_cluster_n); i++)); do
      if [[ -f $(mh_kafka_node_home "$i")/kafka.pid ]] && ! mh_kafka_node_running "$i" >/dev/null; then
        mh_err "Kafka node $i exited"
        mh_tail "$(mh_kafka_node_home "$i")/server.log"
        return 2
      fi
    done
    if mh_kafka_cluster_py ready --nodes "$(mh_kafka_cluster_n)" "${args[@]}" 2>/dev/null; then
      return 0
    fi
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# mh_kafka_cluster_up: start every node that is not running; return when all are
# registered (and, after a restart, back in sync).
mh_kafka_cluster_up() {
  local timeout=${MH_KAFKA_READY_TIMEOUT:-120} i t0=$SECONDS rc=0
  mh_venv || return 1
  command -v java >/dev/null || {
    mh_err "java not found (install openjdk-17-jre-headless, or run mh_install_deps)"
    return 1
  }
  mh_kafka_libs || return 1
  mkdir -p "$MH_KAFKA_CLUSTER_HOME"
  # log4j.properties of the single broker is the template of the nodes'.
  [[ -f $MH_KAFKA_HOME/log4j.properties ]] || mh_kafka_write_config
  mh_kafka_cluster_id "$MH_KAFKA_CLUSTER_HOME/cluster-id" >/dev/null || return 1
  for ((i = 1; i <= $(mh_kafka_cluster_n); i++)); do
    if ! mh_kafka_node_running "$i" >/dev/null; then
      mh_kafka_node_start "$i" || return 1
      MH_KAFKA_STARTED=1
    fi
  done
  mh_kafka_cluster_wait "$timeout" 1 || rc=$?
  if ((rc)); then
    mh_err "Kafka cluster not ready after $((SECONDS - t0))s; logs in $MH_KAFKA_CLUSTER_HOME/*/server.log"
    return 1
  fi
  mh_log "Kafka cluster ready ($(mh_kafka_cluster_brokers); replication $(mh_kafka_cluster_rf), min ISR $(mh_kafka_cluster_min_isr)) after $((SECONDS - t0))s"
}

# mh_kafka_node_stop N: controlled shutdown of node N (SIGTERM; SIGKILL after 60s).
mh_kafka_node_stop() {
  local pid home
  home=$(mh_kafka_node_home "$1")
  if pid=$(mh_kafka_node_running "$1"); then
    mh_log "stopping Kafka node $1 (pid $pid)"
    mh_stop_pid "$pid" 60 "Kafka node $1" || return 1
  fi
  rm -f "$home/kafka.pid"
}

# mh_kafka_node_kill N: SIGKILL node N (a crash: no controlled shutdown).
mh_kafka_node_kill() {
  local pid home
  home=$(mh_kafka_node_home "$1")
  if pid=$(mh_kafka_node_running "$1"); then
    mh_log "killing Kafka node $1 (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
    mh_wait_gone 10 "$pid" || return 1
  fi
  rm -f "$home/kafka.pid"
}

# mh_kafka_node_restart N: start node N again and wait until it is back in every ISR.
mh_kafka_node_restart() {
  mh_kafka_node_start "$1" || return 1
  mh_kafka_cluster_wait "${MH_KAFKA_READY_TIMEOUT:-120}" 1 "$1" || {
    mh_err "Kafka node $1 did not rejoin; see $(mh_kafka_node_home "$1")/server.log"
    return 1
  }
}

# mh_kafka_cluster_down: stop every node (all at once: one by one, the last ones would
# wait for a controller quorum that is already gone).
mh_kafka_cluster_down() {
  local i pid pids=()
  for i in $(mh_kafka_cluster_nodes); do
    if pid=$(mh_kafka_node_running "$i"); then
      pids+=("$pid")
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  if ((${#pids[@]})); then
    mh_log "stopping Kafka cluster (pids ${pids[*]})"
    if ! mh_wait_gone 60 "${pids[@]}"; then
      mh_warn "Kafka nodes still running after 60s; sending SIGKILL"
      kill -KILL "${pids[@]}" 2>/dev/null || true
      mh_wait_gone 10 "${pids[@]}" || return 1
    fi
  fi
  rm -f "$MH_KAFKA_CLUSTER_HOME"/*/kafka.pid
  # shellcheck disable=SC2034 # read by the scripts that source this file
  MH_KAFKA_STARTED=0
}

# mh_kafka_cluster_kill: SIGKILL every node.
mh_kafka_cluster_kill() {
  local i
  for i in $(mh_kafka_cluster_nodes); do mh_kafka_node_kill "$i" || return 1; done
}

# mh_kafka_leader TOPIC [PARTITION]: the node id leading PARTITION (default 0) of TOPIC.
mh_kafka_leader() { mh_kafka_cluster_py leader "$1" "${2:-0}"; }

# mh_kafka_txn_coordinator TRANSACTIONAL_ID: the node id coordinating its transactions.
mh_kafka_txn_coordinator() { mh_kafka_cluster_py txn-coordinator "$1"; }
