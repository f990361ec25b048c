# shellcheck shell=bash
#
# deploy/local/lib.sh — helpers for mailhook's local stack, sourced by deploy/local/up,
# deploy/local/down and tests/run.
#
# It runs everything a developer needs on one machine, without containers:
#   - the system packages (apt-get) and a Python venv for the test suite;
#   - the C build (cmake);
#   - a single-node Apache Kafka broker (KRaft, broker+controller in one JVM) whose jars
#     come from Maven Central through deploy/local/kafka/pom.xml;
#   - a PostgreSQL server from Debian's binaries, in its own data directory;
#   - mailhook-ingest, mailhook-worker and mailhook-api processes.
# Every file it creates (data, logs, pid files, config, venv) lives under $MH_LOCAL
# (".local" at the top of the project), so `deploy/local/down --purge` can remove it.
#
# It is safe to source from scripts running under `set -euo pipefail`; it changes no
# shell options itself. Functions report failures by returning non-zero (after a message
# on stderr); `mh_die` exits the calling script.
#
# Environment (all optional):
#   MAILHOOK_KAFKA_BROKERS  use this Kafka cluster; no local broker is started or stopped
#   MAILHOOK_PG_DSN         use this PostgreSQL database; no local server is started
#   MH_KAFKA_PORT           local broker's client port            (default 9092)
#   MH_KAFKA_CONTROLLER_PORT local KRaft controller port          (default 9093)
#   MH_KAFKA_VERSION        Apache Kafka version fetched from Maven Central (pom default)
#   MH_KAFKA_HEAP           broker JVM heap                       (default 1g)
#   MH_KAFKA_READY_TIMEOUT  seconds to wait for the broker        (default 90)
#   MH_KAFKA_BROKERS_N      local Kafka nodes; over 1 starts a KRaft cluster on other
#                           ports instead of the single broker (deploy/local/cluster.sh:
#                           MH_KAFKA_CLUSTER_PORT, MH_KAFKA_CLUSTER_HEAP, ...)
#   MH_PG_PORT              local PostgreSQL port                 (default 5433)
#   MH_PG_SHARED_BUFFERS    local PostgreSQL shared_buffers   (default an eighth of
#                           memory, 128MB..2GB: mh_pg_shared_buffers)
#   MH_PG_MAX_WAL_SIZE      local PostgreSQL max_wal_size         (default 8GB)
#   MH_PG_HUGE_PAGES=0      leave vm.nr_hugepages alone (as root, mh_pg_up reserves the
#                           2 MB pages PostgreSQL's shared memory needs; mh_pg_huge_pages)
#   MH_INGEST_PORT          mailhook-ingest port in a new config  (default 8080)
#   MH_API_PORT             mailhook-api port in a new config     (default 8081)
#   MH_CONFIG               the local config file       (default $MH_LOCAL/mailhook.ini)
#   MH_VENV                 the Python venv for tools and tests   (default $MH_LOCAL/venv)
#   MH_RUN, MH_LOG          pid files and logs of the mailhook processes
#                           (default $MH_LOCAL/run, $MH_LOCAL/log)
#   MH_BUILD_DIR            cmake build directory (default build, build-asan with MH_SANITIZE=1)
#   MH_SANITIZE=1           configure with -DMH_SANITIZE=ON (ASan+UBSan)
#   MH_CMAKE_ARGS           extra arguments for the cmake configure step
#   MH_BUILD_JOBS           parallel compile jobs                 (default 2)
#   MH_SKIP_DEPS=1          do not check/install system packages
#   MH_SKIP_BUILD=1         (up, tests/run) use the binaries already in the build directory

MH_ROOT="${MH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
MH_LOCAL="${MH_LOCAL:-$MH_ROOT/.local}"
# Exported: `mailhook sign` looks for the local stack's keys under $MH_LOCAL/keys.
export MH_LOCAL
MH_VENV="${MH_VENV:-$MH_LOCAL/venv}"
MH_RUN="${MH_RUN:-$MH_LOCAL/run}"
MH_LOG="${MH_LOG:-$MH_LOCAL/log}"
MH_KAFKA_HOME="$MH_LOCAL/kafka"
MH_PG_HOME="$MH_LOCAL/pg"
MH_KAFKA_PORT="${MH_KAFKA_PORT:-9092}"
MH_KAFKA_CONTROLLER_PORT="${MH_KAFKA_CONTROLLER_PORT:-9093}"
MH_PG_PORT="${MH_PG_PORT:-5433}"
MH_INGEST_PORT="${MH_INGEST_PORT:-8080}"
MH_API_PORT="${MH_API_PORT:-8081}"
# Set when the caller chose the config file (mh_kafka_cluster_select keeps it then).
MH_CONFIG_GIVEN=${MH_CONFIG:+1}
MH_CONFIG="${MH_CONFIG:-$MH_LOCAL/mailhook.ini}"
# mailhook-api's bearer token, generated once (mh_api_token); never printed.
MH_API_TOKEN_FILE="$MH_LOCAL/api-token"

# Set to 1 by mh_kafka_up / mh_pg_up when this shell actually started the service, so
# callers stop only what they started.
MH_KAFKA_STARTED=0
MH_PG_STARTED=0

MH_APT_PACKAGES=(
  build-essential cmake pkg-config
  librdkafka-dev libevent-dev libjansson-dev libinih-dev libcmocka-dev libssl-dev libpq-dev
  libjemalloc-dev
  postgresql openjdk-17-jre-headless maven
  python3 python3-pip python3-venv
  curl openssl procps
  nghttp2-client libhttp-parser-dev
  clang
  chromium chromium-driver
)

# The sources written into the local config: one per provider, each described by
# tests/fixtures/<provider>/source.ini, read by this program with Python's configparser
# (the golden end-to-end test reads the same files; docs/providers/README.md). See
# mh_config_sources.
MH_FIXTURE_SOURCES="$MH_ROOT/tests/e2e/fixture_sources.py"

# ---------------------------------------------------------------------------------------
# messages

mh_log() {
  if [[ -t 2 ]]; then
    printf '\033[1m==>\033[0m %s\n' "$*" >&2
  else
    printf '==> %s\n' "$*" >&2
  fi
}
mh_warn() { printf 'warning: %s\n' "$*" >&2; }
mh_err() { printf 'error: %s\n' "$*" >&2; }
mh_die() {
  mh_err "$*"
  exit 1
}

# mh_tail FILE [N]: the last N lines of a log, indented, for error reports.
mh_tail() {
  local file=$1 n=${2:-30}
  [[ -f $file ]] || return 0
  printf -- '--- last %s lines of %s ---\n' "$n" "$file" >&2
  tail -n "$n" "$file" | sed 's/^/  /' >&2
  printf -- '---\n' >&2
}

# ---------------------------------------------------------------------------------------
# small process helpers

# mh_pid_alive PID: the process exists (and is not a zombie).
mh_pid_alive() {
  local pid=${1:-}
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  local state
  state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
  [[ -n $state && $state != Z* ]]
}

# mh_pidfile_pid FILE: the pid stored in FILE if that process is alive, else nothing
# (and status 1).
mh_pidfile_pid() {
  local file=$1 pid
  [[ -f $file ]] || return 1
  pid=$(head -n1 "$file" 2>/dev/null || true)
  mh_pid_alive "$pid" || return 1
  printf '%s\n' "$pid"
}

# mh_wait_gone TIMEOUT PID...: wait until every PID has exited; status 1 on timeout.
mh_wait_gone() {
  local timeout=$1
  shift
  local deadline=$((SECONDS + timeout)) pid alive
  while :; do
    alive=0
    for pid in "$@"; do
      if mh_pid_alive "$pid"; then alive=1; fi
    done
    ((alive)) || return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# mh_wait_reaped TIMEOUT PID: wait until PID is gone even as a zombie. A new postmaster
# refuses to start while kill(old pid, 0) succeeds, which it does for as long as the dead
# one waits to be reaped by whatever adopted it when pg_ctl exited.
mh_wait_reaped() {
  local deadline=$((SECONDS + $1)) pid=$2
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      mh_warn "exited process $pid not reaped after $1s"
      return 0
    fi
    sleep 0.2
  done
}

# mh_stop_pid PID TIMEOUT [NAME]: SIGTERM, wait up to TIMEOUT seconds, then SIGKILL.
mh_stop_pid() {
  local pid=$1 timeout=$2 name=${3:-process}
  mh_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  if ! mh_wait_gone "$timeout" "$pid"; then
    mh_warn "$name (pid $pid) still running after ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    mh_wait_gone 10 "$pid" || {
      mh_err "$name (pid $pid) survived SIGKILL"
      return 1
    }
  fi
}

# mh_port_open HOST PORT: something accepts TCP connections there.
mh_port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# mh_spawn PIDFILE LOGFILE CMD...: run CMD in the background in its own session (so a
# Ctrl-C in the calling terminal does not reach it), stdin from /dev/null, stdout and
# stderr to LOGFILE, and record its pid (the pid of CMD itself, via exec) in PIDFILE.
mh_spawn() {
  local pidfile=$1 logfile=$2
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$ and $0 are expanded by the inner shell
  setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$logfile" 2>&1 &
  disown "$!" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidfile ]] && return 0
    sleep 0.1
  done
  mh_err "could not start $1 (no pid file $pidfile)"
  return 1
}

# mh_rotate_log FILE: keep the previous run's log as FILE.1.
mh_rotate_log() {
  local file=$1
  mkdir -p "$(dirname "$file")"
  if [[ -s $file ]]; then mv -f "$file" "$file.1"; fi
  : >"$file"
}

# ---------------------------------------------------------------------------------------
# dependencies

# mh_install_deps: install the missing system packages (apt-get), then the Python venv.
mh_install_deps() {
  if [[ ${MH_SKIP_DEPS:-0} != 1 ]]; then
    mh_apt_install "${MH_APT_PACKAGES[@]}" || return 1
  fi
  mh_venv
}

# mh_apt_install PKG...: install those of PKG that dpkg does not list as installed.
mh_apt_install() {
  local missing=() pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  mh_log "installing system packages: ${missing[*]}"
  local sudo=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || {
      mh_err "missing packages (${missing[*]}) and not root; install them or set MH_SKIP_DEPS=1"
      return 1
    }
    sudo=(sudo -n)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null || return 1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null || return 1
}

# mh_venv: the test/tooling venv at $MH_VENV with tests/requirements.txt; pip runs only
# when the requirements (or the interpreter) changed since the last install.
mh_venv() {
  local req="$MH_ROOT/tests/requirements.txt" stamp="$MH_VENV/.requirements.sha256"
  local want have=""
  command -v python3 >/dev/null || {
    mh_err "python3 not found in PATH"
    return 1
  }
  want="$(sha256sum "$req" | cut -d' ' -f1) $(python3 -c 'import sys;print(sys.version.split()[0])')"
  [[ -f $stamp ]] && have=$(cat "$stamp")
  if [[ $have == "$want" ]] && "$MH_VENV/bin/python" -c 'import sys' 2>/dev/null; then
    return 0
  fi
  if ! "$MH_VENV/bin/python" -c 'import sys' 2>/dev/null ||
    [[ ${have#* } != "${want#* }" ]]; then
    mh_log "creating Python venv at $MH_VENV"
    rm -rf "$MH_VENV"
    python3 -m venv "$MH_VENV" || return 1
  fi
  mh_log "installing Python packages from tests/requirements.txt"
  "$MH_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip </dev/null || return 1
  "$MH_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" </dev/null || return 1
  printf '%s\n' "$want" >"$stamp"
}

# ---------------------------------------------------------------------------------------
# build

# mh_build_dir: the cmake build directory in use.
mh_build_dir() {
  if [[ -n ${MH_BUILD_DIR:-} ]]; then
    printf '%s\n' "$MH_BUILD_DIR"
  elif [[ ${MH_SANITIZE:-0} == 1 ]]; then
    printf '%s\n' "$MH_ROOT/build-asan"
  else
    printf '%s\n' "$MH_ROOT/build"
  fi
}

# mh_build [TARGET...]: configure and build mailhook (RelWithDebInfo; MH_SANITIZE=1 adds
# sanitizers): the given targets, or everything (programs and tests).
mh_build() {
  local dir args=() targets=()
  if (($#)); then targets=(--target "$@"); fi
  dir=$(mh_build_dir)
  if [[ ! -f $MH_ROOT/CMakeLists.txt ]]; then
    mh_err "no CMakeLists.txt in $MH_ROOT: the C sources are not in this tree"
    return 1
  fi
  [[ ${MH_SANITIZE:-0} == 1 ]] && args+=(-DMH_SANITIZE=ON)
  # shellcheck disable=SC2206 # MH_CMAKE_ARGS is a word list on purpose
  args+=(${MH_CMAKE_ARGS:-})
  mh_log "building mailhook in $dir"
  cmake -S "$MH_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${args[@]}" </dev/null || return 1
  cmake --build "$dir" -j"${MH_BUILD_JOBS:-2}" "${targets[@]}" </dev/null || return 1
  mh_check_binaries "$@"
}

# mh_check_binaries [PROGRAM...]: the given programs (default the four) exist in the
# build directory.
mh_check_binaries() {
  local dir b missing=() want=("$@")
  ((${#want[@]})) || want=(mailhook-ingest mailhook-worker mailhook-api mailhook)
  dir=$(mh_build_dir)
  for b in "${want[@]}"; do
    [[ -x $dir/$b ]] || missing+=("$b")
  done
  if ((${#missing[@]})); then
    mh_err "not built: ${missing[*]} (expected in $dir; run mh_build / deploy/local/up)"
    return 1
  fi
}

# mh_cli ARGS...: run the mailhook CLI with the local config.
mh_cli() {
  "$(mh_build_dir)/mailhook" --config "$MH_CONFIG" "$@"
}

# ---------------------------------------------------------------------------------------
# Kafka

mh_brokers() {
  if [[ -z ${MAILHOOK_KAFKA_BROKERS:-} ]] && mh_kafka_cluster_mode; then
    mh_kafka_cluster_brokers
    return
  fi
  printf '%s\n' "${MAILHOOK_KAFKA_BROKERS:-127.0.0.1:$MH_KAFKA_PORT}"
}

# mh_kafka_cluster_id FILE: the KRaft cluster id kept in FILE; one is drawn (16 random
# bytes in URL-safe base64, unpadded) and written there first when FILE holds none, or
# one that starts with "-": kafka-storage would take such an id for an option (it never
# formatted anything), so Kafka's own Uuid.randomUuid draws again in that case, as this
# does.
mh_kafka_cluster_id() {
  local file=$1 id=""
  [[ -s $file ]] && id=$(<"$file")
  if [[ -z $id || $id == -* ]]; then
    id=$(python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break') || return 1
    printf '%s\n' "$id" >"$file"
  fi
  printf '%s\n' "$id"
}

# mh_kafka_libs: copy the broker's jars (with every runtime dependency) from Maven into
# $MH_KAFKA_HOME/libs, unless the same version is already there.
mh_kafka_libs() {
  local pom="$MH_ROOT/deploy/local/kafka/pom.xml" libs="$MH_KAFKA_HOME/libs"
  local want mvnargs=()
  if [[ -n ${MH_KAFKA_VERSION:-} ]]; then mvnargs+=("-Dkafka.version=$MH_KAFKA_VERSION"); fi
  want="$(sha256sum "$pom" | cut -d' ' -f1) ${MH_KAFKA_VERSION:-default}"
  if [[ -f $libs/.stamp && $(cat "$libs/.stamp") == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || {
    mh_err "mvn not found (install maven, or run mh_install_deps)"
    return 1
  }
  mh_log "fetching Apache Kafka ${MH_KAFKA_VERSION:-(pom default)} jars with Maven"
  rm -rf "$libs.tmp"
  mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DoutputDirectory="$libs.tmp" -DincludeScope=runtime "${mvnargs[@]}" </dev/null || {
    rm -rf "$libs.tmp"
    mh_err "maven could not fetch the Kafka jars"
    return 1
  }
  rm -rf "$libs"
  mv "$libs.tmp" "$libs"
  printf '%s\n' "$want" >"$libs/.stamp"
}

# mh_kafka_write_config: server.properties and log4j.properties (rewritten every start).
mh_kafka_write_config() {
  mkdir -p "$MH_KAFKA_HOME/data"
  cat >"$MH_KAFKA_HOME/server.properties" <<EOF
# Single-node Apache Kafka for mailhook's local stack (KRaft: broker and controller in
# one process). Written by deploy/local/lib.sh on every start; edit that file instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$MH_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$MH_KAFKA_PORT,CONTROLLER://127.0.0.1:$MH_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$MH_KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$MH_KAFKA_HOME/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
# After a crash (mh_kafka_kill) the restarted broker may register only once its previous
# registration expired: keep that short for the fault tests.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=134217728
EOF
  cat >"$MH_KAFKA_HOME/log4j.properties" <<EOF
# Broker logging for the local stack: everything at INFO into server.log, nothing on
# the console. Written by deploy/local/lib.sh.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$MH_KAFKA_HOME/server.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel\$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

# mh_kafka_running: status 0 and the pid on stdout when our broker runs.
mh_kafka_running() {
  local pid
  pid=$(mh_pidfile_pid "$MH_KAFKA_HOME/kafka.pid") || return 1
  grep -qa 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# mh_kafka_wait_ready BROKERS TIMEOUT [PID]: wait until the broker answers metadata
# requests and lists itself (a KRaft broker answers on its port a little before it is
# unfenced). With PID, give up as soon as that process dies.
mh_kafka_wait_ready() {
  local brokers=$1 timeout=$2 pid=${3:-}
  local deadline=$((SECONDS + timeout)) host port
  host=${brokers%%,*}
  port=${host##*:}
  host=${host%:*}
  while ! mh_port_open "$host" "$port"; do
    if [[ -n $pid ]] && ! mh_pid_alive "$pid"; then return 2; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
  while :; do
    if [[ -n $pid ]] && ! mh_pid_alive "$pid"; then return 2; fi
    if "$MH_VENV/bin/python" - "$brokers" <<'PY' 2>/dev/null; then return 0; fi
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=3)
sys.exit(0 if md.brokers and md.controller_id >= 0 else 1)
PY
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# mh_kafka_up: start the local broker unless MAILHOOK_KAFKA_BROKERS names another one or
# it already runs; return when it serves requests.
mh_kafka_up() {
  local timeout=${MH_KAFKA_READY_TIMEOUT:-90} pid rc=0
  mh_venv || return 1
  if [[ -z ${MAILHOOK_KAFKA_BROKERS:-} ]] && mh_kafka_cluster_mode; then
    mh_kafka_cluster_up
    return
  fi
  if [[ -n ${MAILHOOK_KAFKA_BROKERS:-} ]]; then
    mh_log "using Kafka at $MAILHOOK_KAFKA_BROKERS (MAILHOOK_KAFKA_BROKERS)"
    mh_kafka_wait_ready "$MAILHOOK_KAFKA_BROKERS" "$timeout" || {
      mh_err "Kafka at $MAILHOOK_KAFKA_BROKERS does not answer"
      return 1
    }
    return 0
  fi
  if pid=$(mh_kafka_running); then
    mh_log "Kafka already running (pid $pid) on 127.0.0.1:$MH_KAFKA_PORT"
    mh_kafka_wait_ready "$(mh_brokers)" "$timeout" "$pid" || {
      mh_err "Kafka (pid $pid) runs but does not answer; see $MH_KAFKA_HOME/server.log"
      return 1
    }
    return 0
  fi
  if mh_port_open 127.0.0.1 "$MH_KAFKA_PORT" || mh_port_open 127.0.0.1 "$MH_KAFKA_CONTROLLER_PORT"; then
    mh_err "port $MH_KAFKA_PORT or $MH_KAFKA_CONTROLLER_PORT is taken by a process this stack did not start;"
    mh_err "stop it, set MH_KAFKA_PORT/MH_KAFKA_CONTROLLER_PORT, or set MAILHOOK_KAFKA_BROKERS to use it"
    return 1
  fi
  command -v java >/dev/null || {
    mh_err "java not found (install openjdk-17-jre-headless, or run mh_install_deps)"
    return 1
  }
  mh_kafka_libs || return 1
  mh_kafka_write_config
  local cp="$MH_KAFKA_HOME/libs/*"
  # Kafka's own G1 settings, on a heap fixed at its size: with 512 MB the young
  # generation was collected every few seconds under load, each pause 10-82 ms, and
  # every request in flight then waited for it (docs/kafka.md, "The local broker's heap").
  local heap=${MH_KAFKA_HEAP:-1g}
  local jvm=(java "-Xmx$heap" "-Xms$heap" -Xss1m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:G1HeapRegionSize=16M
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$MH_KAFKA_HOME/log4j.properties"
    "-Dkafka.logs.dir=$MH_KAFKA_HOME")
  if [[ ! -f $MH_KAFKA_HOME/data/meta.properties ]]; then
    local cluster_id
    cluster_id=$(mh_kafka_cluster_id "$MH_KAFKA_HOME/cluster-id") || return 1
    mh_log "formatting Kafka storage (cluster id $cluster_id)"
    "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format --ignore-formatted \
      -t "$cluster_id" -c "$MH_KAFKA_HOME/server.properties" \
      </dev/null >>"$MH_KAFKA_HOME/format.log" 2>&1 || {
      mh_err "formatting Kafka storage failed"
      mh_tail "$MH_KAFKA_HOME/format.log"
      return 1
    }
  fi
  mh_log "starting Kafka on 127.0.0.1:$MH_KAFKA_PORT (controller :$MH_KAFKA_CONTROLLER_PORT)"
  local t0=$SECONDS
  mh_rotate_log "$MH_KAFKA_HOME/stdout.log"
  # shellcheck disable=SC2086 # MH_KAFKA_JAVA_OPTS is a word list on purpose
  mh_spawn "$MH_KAFKA_HOME/kafka.pid" "$MH_KAFKA_HOME/stdout.log" \
    "${jvm[@]}" ${MH_KAFKA_JAVA_OPTS:-} -cp "$cp" kafka.Kafka "$MH_KAFKA_HOME/server.properties" || return 1
  pid=$(cat "$MH_KAFKA_HOME/kafka.pid")
  MH_KAFKA_STARTED=1
  mh_kafka_wait_ready "$(mh_brokers)" "$timeout" "$pid" || rc=$?
  if ((rc == 2)); then
    mh_err "Kafka exited during start-up"
    mh_tail "$MH_KAFKA_HOME/stdout.log"
    mh_tail "$MH_KAFKA_HOME/server.log"
    rm -f "$MH_KAFKA_HOME/kafka.pid"
    return 1
  elif ((rc != 0)); then
    mh_err "Kafka (pid $pid) not ready after ${timeout}s"
    mh_tail "$MH_KAFKA_HOME/server.log"
    return 1
  fi
  mh_log "Kafka ready (pid $pid) after $((SECONDS - t0))s"
}

# mh_kafka_down: stop our broker (SIGTERM for a controlled shutdown, SIGKILL after 30s).
mh_kafka_down() {
  local pid
  [[ -z ${MAILHOOK_KAFKA_BROKERS:-} ]] || return 0
  if mh_kafka_cluster_mode; then
    mh_kafka_cluster_down
    return
  fi
  if pid=$(mh_kafka_running); then
    mh_log "stopping Kafka (pid $pid)"
    mh_stop_pid "$pid" 30 Kafka || return 1
  fi
  rm -f "$MH_KAFKA_HOME/kafka.pid"
  # shellcheck disable=SC2034 # read by the scripts that source this file
  MH_KAFKA_STARTED=0
}

# mh_kafka_kill: SIGKILL our broker (fault injection: no controlled shutdown).
mh_kafka_kill() {
  local pid
  [[ -z ${MAILHOOK_KAFKA_BROKERS:-} ]] || {
    mh_err "Kafka is external (MAILHOOK_KAFKA_BROKERS); not killing it"
    return 1
  }
  if mh_kafka_cluster_mode; then
    mh_kafka_cluster_kill
    return
  fi
  if pid=$(mh_kafka_running); then
    mh_log "killing Kafka (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
    mh_wait_gone 10 "$pid" || return 1
  fi
  rm -f "$MH_KAFKA_HOME/kafka.pid"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

mh_pg_dsn() {
  printf '%s\n' "${MAILHOOK_PG_DSN:-postgresql://postgres@127.0.0.1:$MH_PG_PORT/mailhook}"
}

# mh_pg_bin: Debian's server binaries (newest installed major version).
mh_pg_bin() {
  local v
  v=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -n1)
  if [[ -z $v || ! -x /usr/lib/postgresql/$v/bin/pg_ctl ]]; then
    mh_err "PostgreSQL server binaries not found under /usr/lib/postgresql (install postgresql)"
    return 1
  fi
  printf '%s\n' "/usr/lib/postgresql/$v/bin"
}

# mh_pg_as CMD...: run CMD as the postgres user when we are root (the server refuses to
# run as root), as ourselves otherwise. Runs from / so the user needs no access to $PWD.
mh_pg_as() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# mh_pg_prepare_dirs: $MH_PG_HOME/{data,run,log} owned by the server's user, and every
# parent directory traversable by it (chmod o+x only where that is missing).
mh_pg_prepare_dirs() {
  mkdir -p "$MH_PG_HOME/run" "$MH_PG_HOME/log"
  [[ $EUID -eq 0 ]] || return 0
  id postgres >/dev/null 2>&1 || {
    mh_err "no 'postgres' user (install the postgresql package)"
    return 1
  }
  chown postgres:postgres "$MH_PG_HOME" "$MH_PG_HOME/run" "$MH_PG_HOME/log"
  [[ -d $MH_PG_HOME/data ]] && chown -R postgres:postgres "$MH_PG_HOME/data"
  if ! runuser -u postgres -- test -x "$MH_PG_HOME"; then
    local dir=$MH_PG_HOME parents=()
    while [[ $dir != / ]]; do
      dir=$(dirname "$dir")
      parents=("$dir" "${parents[@]}")
    done
    for dir in "${parents[@]}"; do
      if ! runuser -u postgres -- test -x "$dir"; then
        mh_log "chmod o+x $dir (so the postgres user can reach $MH_PG_HOME)"
        chmod o+x "$dir"
      fi
    done
  fi
}

# mh_pg_running: status 0 and the postmaster's pid on stdout when our server runs.
mh_pg_running() {
  local pid
  [[ -f $MH_PG_HOME/data/postmaster.pid ]] || return 1
  pid=$(head -n1 "$MH_PG_HOME/data/postmaster.pid" 2>/dev/null || true)
  mh_pid_alive "$pid" || return 1
  grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# mh_pg_up: start the local server unless MAILHOOK_PG_DSN names another database or it
# already runs; create the mailhook database; return when it accepts connections.
mh_pg_up() {
  local bin pid data="$MH_PG_HOME/data"
  bin=$(mh_pg_bin) || return 1
  if [[ -n ${MAILHOOK_PG_DSN:-} ]]; then
    mh_log "using PostgreSQL from MAILHOOK_PG_DSN"
    local i
    for ((i = 0; i < 30; i++)); do
      "$bin/psql" "$MAILHOOK_PG_DSN" -XqtAc 'select 1' </dev/null >/dev/null 2>&1 && return 0
      sleep 1
    done
    mh_err "the database in MAILHOOK_PG_DSN does not answer"
    "$bin/psql" "$MAILHOOK_PG_DSN" -XqtAc 'select 1' </dev/null >/dev/null || true
    return 1
  fi
  mh_pg_prepare_dirs || return 1
  if [[ ! -f $data/PG_VERSION ]]; then
    mh_log "initializing PostgreSQL data directory $data"
    rm -rf "$data"
    mkdir -p "$data"
    [[ $EUID -ne 0 ]] || chown postgres:postgres "$data"
    mh_pg_as "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C \
      </dev/null >"$MH_PG_HOME/log/initdb.log" 2>&1 || {
      mh_err "initdb failed"
      mh_tail "$MH_PG_HOME/log/initdb.log"
      return 1
    }
    printf "\n# local stack settings (deploy/local/lib.sh)\ninclude_if_exists = 'mailhook.conf'\n" \
      >>"$data/postgresql.conf"
  fi
  if pid=$(mh_pg_running); then
    mh_log "PostgreSQL already running (pid $pid)"
  else
    if mh_port_open 127.0.0.1 "$MH_PG_PORT"; then
      mh_err "port $MH_PG_PORT is taken by a process this stack did not start;"
      mh_err "stop it, set MH_PG_PORT, or set MAILHOOK_PG_DSN to use it"
      return 1
    fi
    cat >"$data/mailhook.conf" <<EOF
# Written by deploy/local/lib.sh on every start.
listen_addresses = '127.0.0.1'
port = $MH_PG_PORT
unix_socket_directories = '$MH_PG_HOME/run'
max_connections = 200
# Claims land on random leaves of mh_claims's primary key: the index in shared memory
# keeps a growing claim table from reading and writing back a page per claim.
shared_buffers = $(mh_pg_shared_buffers)
# The first change of an index leaf after a checkpoint writes the whole page to the WAL,
# and claims change random leaves: checkpoints far apart (PostgreSQL's defaults, 1GB and
# 5min, start one every few seconds under a worker's load on a large claims table) and
# compressed page images keep most claims from writing a page (docs/performance.md,
# growth).
max_wal_size = ${MH_PG_MAX_WAL_SIZE:-8GB}
checkpoint_timeout = 15min
wal_compression = lz4
# Shared memory in 2 MB pages where the kernel has them reserved (mh_pg_huge_pages), else
# in 4 KiB pages as by default.
huge_pages = try
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
EOF
    [[ $EUID -ne 0 ]] || chown postgres:postgres "$data/mailhook.conf"
    mh_pg_huge_pages "$bin" "$data"
    mh_log "starting PostgreSQL on 127.0.0.1:$MH_PG_PORT"
    mh_pg_as "$bin/pg_ctl" -D "$data" -l "$MH_PG_HOME/log/postgresql.log" -w -t 60 start \
      </dev/null >"$MH_PG_HOME/log/pg_ctl.log" 2>&1 || {
      mh_err "PostgreSQL did not start"
      mh_tail "$MH_PG_HOME/log/pg_ctl.log"
      mh_tail "$MH_PG_HOME/log/postgresql.log"
      return 1
    }
    MH_PG_STARTED=1
  fi
  local exists
  exists=$("$bin/psql" -h 127.0.0.1 -p "$MH_PG_PORT" -U postgres -d postgres -XqtAc \
    "select 1 from pg_database where datname = 'mailhook'" </dev/null) || {
    mh_err "PostgreSQL on port $MH_PG_PORT does not answer"
    return 1
  }
  if [[ $exists != 1 ]]; then
    mh_log "creating database mailhook"
    "$bin/createdb" -h 127.0.0.1 -p "$MH_PG_PORT" -U postgres mailhook </dev/null || return 1
  fi
}

# mh_pg_shared_buffers: MH_PG_SHARED_BUFFERS, else an eighth of the machine's memory
# between 128MB and 2GB (PostgreSQL's usual advice is a quarter on a database host; this
# stack shares the machine with Kafka, mailhook and the load generators).
mh_pg_shared_buffers() {
  if [[ -n ${MH_PG_SHARED_BUFFERS:-} ]]; then
    printf '%s\n' "$MH_PG_SHARED_BUFFERS"
    return
  fi
  local kib mib
  kib=$(mh_meminfo MemTotal)
  mib=$((${kib:-0} / 1024 / 8))
  ((mib >= 128)) || mib=128
  ((mib <= 2048)) || mib=2048
  printf '%dMB\n' "$mib"
}

# mh_pg_huge_pages BIN DATA: as root, reserves the 2 MB pages the server's shared memory
# needs (vm.nr_hugepages) before it starts; MH_PG_HUGE_PAGES=0 leaves the kernel's setting
# alone. In 4 KiB pages every backend maps each page of the buffers it touches on its
# first touch, and each random leaf of the claims' primary key a claim reads costs a TLB
# miss: a worker on a large claim table pays both on every claim (docs/performance.md,
# growth). The pages added are recorded and given back by mh_pg_down; if the kernel has
# fewer free, huge_pages = try starts the server on 4 KiB pages.
mh_pg_huge_pages() {
  local bin=$1 data=$2 need total free rsvd missing added=0 got try
  local mark="$MH_PG_HOME/hugepages-added"
  [[ ${MH_PG_HUGE_PAGES:-1} != 0 && $EUID -eq 0 && -w /proc/sys/vm/nr_hugepages ]] || return 0
  # A runtime-computed setting: asked of the stopped server, with its config.
  need=$(mh_pg_as "$bin/postgres" -D "$data" -C shared_memory_size_in_huge_pages \
    </dev/null 2>/dev/null) || return 0
  [[ $need =~ ^[0-9]+$ ]] && ((need > 0)) || return 0
  total=$(mh_meminfo HugePages_Total)
  free=$(mh_meminfo HugePages_Free)
  rsvd=$(mh_meminfo HugePages_Rsvd)
  missing=$((need - (free - rsvd)))
  ((missing > 0)) || return 0
  [[ -f $mark ]] && added=$(<"$mark")
  # The kernel takes what it finds free in 2 MB runs; each try compacts and reclaims more.
  for try in 1 2 3 4 5; do
    echo $((total + missing)) >/proc/sys/vm/nr_hugepages 2>/dev/null || return 0
    got=$(mh_meminfo HugePages_Total)
    ((got - total < missing)) || break
    echo 1 >/proc/sys/vm/compact_memory 2>/dev/null || true
  done
  echo $((added + got - total)) >"$mark"
  if ((got - total < missing)); then
    mh_warn "the kernel reserved $((got - total)) of $missing more huge pages;" \
      "PostgreSQL starts on 4 KiB pages"
  fi
}

# mh_meminfo FIELD: the number /proc/meminfo gives for FIELD (kB, or pages for the
# HugePages_ counts); nothing when the kernel has no such field.
mh_meminfo() {
  awk -v f="$1:" '$1 == f {print $2; exit}' /proc/meminfo 2>/dev/null
}

# mh_pg_huge_pages_release: gives back the huge pages mh_pg_huge_pages reserved.
mh_pg_huge_pages_release() {
  local mark="$MH_PG_HOME/hugepages-added" added total
  [[ -f $mark ]] || return 0
  added=$(<"$mark")
  total=$(mh_meminfo HugePages_Total)
  if [[ $added =~ ^[0-9]+$ ]] && ((total >= added)); then
    echo $((total - added)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
  fi
  rm -f "$mark"
}

# mh_pg_down: stop our server (fast shutdown: active transactions roll back).
mh_pg_down() {
  local bin pid
  [[ -z ${MAILHOOK_PG_DSN:-} ]] || return 0
  pid=$(mh_pg_running) || {
    mh_pg_huge_pages_release
    return 0
  }
  bin=$(mh_pg_bin) || return 1
  mh_log "stopping PostgreSQL (pid $pid)"
  mh_pg_as "$bin/pg_ctl" -D "$MH_PG_HOME/data" -m fast -w -t 60 stop </dev/null >/dev/null || {
    mh_warn "pg_ctl stop failed; killing PostgreSQL"
    mh_pg_kill
    return
  }
  mh_wait_gone 10 "$pid" || return 1
  mh_wait_reaped 30 "$pid"
  mh_pg_huge_pages_release
  # shellcheck disable=SC2034 # read by the scripts that source this file
  MH_PG_STARTED=0
}

# mh_pg_kill: SIGKILL the postmaster and all its backends (fault injection: a crash,
# the next start runs recovery).
mh_pg_kill() {
  local pid pids
  [[ -z ${MAILHOOK_PG_DSN:-} ]] || {
    mh_err "PostgreSQL is external (MAILHOOK_PG_DSN); not killing it"
    return 1
  }
  pid=$(mh_pg_running) || return 0
  mh_log "killing PostgreSQL (pid $pid)"
  # Backends are the postmaster's children, each in its own session: list them before
  # the postmaster dies, then kill them all at once as a machine crash would.
  pids=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)
  # shellcheck disable=SC2086 # word list of pids
  kill -KILL "$pid" $pids 2>/dev/null || true
  # shellcheck disable=SC2086
  mh_wait_gone 10 "$pid" $pids || return 1
  mh_wait_reaped 30 "$pid"
}

# ---------------------------------------------------------------------------------------
# local config

# mh_secret: 32 random bytes, hex (fails rather than print an empty or short secret);
# placeholder @secret.
mh_secret() {
  local secret
  secret=$(openssl rand -hex 32) || return 1
  [[ ${#secret} -eq 64 ]] || return 1
  printf '%s\n' "$secret"
}

# The local stack's key pairs, each made on first use and kept under $MH_LOCAL/keys, and
# its secrets: mh_source_value hands them to the sources whose source.ini names their
# placeholder. Sign test requests with the private halves:
# mailhook sign --source SOURCE --key KEY ...

# The RSA pair (placeholder @rsa_public_key; Postal and Ark): its public half's path.
mh_signing_key() {
  local dir="$MH_LOCAL/keys"
  if [[ ! -s $dir/signing.pem ]]; then
    mkdir -p "$dir" && chmod 700 "$dir"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/signing.pem" 2>/dev/null &&
      openssl pkey -in "$dir/signing.pem" -pubout -out "$dir/signing.pub.pem" || return 1
  fi
  printf '%s\n' "$dir/signing.pub.pem"
}

# The ECDSA P-256 pair (placeholder @ec_public_key; SendGrid), next to the RSA one:
# its public half's path (sign with .local/keys/sendgrid.pem).
mh_sendgrid_key() {
  local dir="$MH_LOCAL/keys"
  if [[ ! -s $dir/sendgrid.pem ]]; then
    mkdir -p "$dir" && chmod 700 "$dir"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/sendgrid.pem" 2>/dev/null &&
      openssl pkey -in "$dir/sendgrid.pem" -pubout -out "$dir/sendgrid.pub.pem" || return 1
  fi
  printf '%s\n' "$dir/sendgrid.pub.pem"
}

# Amazon SES through SNS (placeholder @ses_certificate): SNS signs with the RSA key of an
# X.509 certificate named in SigningCertURL. The local stack makes a self-signed stand-in
# (never an AWS certificate) named like SNS's; its path (sign test requests with:
# mailhook sign --source ses --key .local/keys/ses/ses.pem FILE — an SNS message is
# re-signed, an SES record is wrapped in a new Notification).
mh_ses_cert() {
  local dir="$MH_LOCAL/keys/ses"
  local cert="$dir/SimpleNotificationService-mailhook-local.pem"
  if [[ ! -s $cert ]]; then
    mkdir -p "$dir" && chmod 700 "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ses.pem" -out "$cert" -days 3650 \
      -subj "/CN=mailhook local SNS stand-in" 2>/dev/null || return 1
  fi
  printf '%s\n' "$cert"
}

# mh_whsec_secret: a Standard Webhooks (Svix, Resend) signing secret, "whsec_" and the
# base64 of 32 random bytes, as those dashboards show it (placeholder @whsec_secret).
mh_whsec_secret() {
  local key
  key=$(openssl rand -base64 32) || return 1
  [[ ${#key} -eq 44 ]] || return 1
  printf 'whsec_%s\n' "$key"
}

# mh_source_value SOURCE VALUE: VALUE for a key of [source.SOURCE], its "@" placeholder
# (the vocabulary of docs/providers/README.md) resolved; other values as they are.
mh_source_value() {
  local src=$1 value=$2
  case $value in
  @secret) mh_secret ;;
  @whsec_secret) mh_whsec_secret ;;
  @rsa_public_key) mh_signing_key ;;
  @ec_public_key) mh_sendgrid_key ;;
  @ses_certificate) mh_ses_cert ;;
  # Mandrill signs the webhook URL as entered in Mandrill: locally, the ingest URL.
  @webhook_url) printf 'http://127.0.0.1:%s/v1/webhooks/%s\n' "$MH_INGEST_PORT" "$src" ;;
  @*)
    mh_err "source $src: unknown placeholder $value"
    return 1
    ;;
  *) printf '%s\n' "$value" ;;
  esac
}

# mh_config_sources FILE: append to FILE the [source.NAME] block of every source that
# tests/fixtures/*/source.ini describes and FILE lacks, placeholders resolved (so secrets
# already in FILE stay as they are).
mh_config_sources() {
  local file=$1 listing name key value prev="" block="" rc=0
  command -v python3 >/dev/null || {
    mh_err "python3 not found in PATH (it reads tests/fixtures/*/source.ini)"
    return 1
  }
  listing=$(python3 "$MH_FIXTURE_SOURCES" local </dev/null) || {
    mh_err "cannot read the local sources from tests/fixtures/*/source.ini"
    return 1
  }
  # listing: NAME<TAB>KEY<TAB>VALUE lines, grouped by source, in providers.def's order.
  while IFS=$'\t' read -r name key value; do
    if [[ $name != "$prev" ]]; then
      if [[ -n $block ]]; then printf '\n%s\n' "$block" >>"$file" || return 1; fi
      prev=$name block=""
      if ! grep -q "^\[source\.${name//./\\.}\]" "$file"; then block="[source.$name]"; fi
    fi
    [[ -n $block ]] || continue
    value=$(mh_source_value "$name" "$value") || rc=1
    if ((rc)) || [[ -z $value ]]; then
      mh_err "cannot generate the config of source $name (is openssl installed?)"
      return 1
    fi
    block+=$'\n'"$key = $value"
  done <<<"$listing"
  if [[ -n $block ]]; then printf '\n%s\n' "$block" >>"$file" || return 1; fi
}

# mh_api_token: create mailhook-api's bearer token file once (mode 0600) and print its
# path; the token itself is never printed.
mh_api_token() {
  local file=$MH_API_TOKEN_FILE
  if [[ ! -s $file ]]; then
    mkdir -p "$(dirname "$file")"
    (
      umask 077
      mh_secret >"$file.tmp" && mv "$file.tmp" "$file"
    ) || {
      rm -f "$file.tmp"
      mh_err "cannot generate the API token (is openssl installed?)"
      return 1
    }
  fi
  printf '%s\n' "$file"
}

# mh_config_api: the [api] block (the token stays in its file, the config names it).
mh_config_api() {
  cat <<EOF
[api]
listen = 127.0.0.1:$MH_API_PORT
token_file = $MH_API_TOKEN_FILE
; the console's per-source charts read the ingest's own counters
ingest_metrics = http://127.0.0.1:$MH_INGEST_PORT/metrics
EOF
}

# mh_write_config FILE: the local stack's config. Written once, so secrets stay stable
# across runs; a source added later (a new tests/fixtures/*/source.ini) is appended with
# a new secret.
# MAILHOOK_KAFKA_BROKERS / MAILHOOK_PG_DSN override [kafka] and [postgres] inside the
# programs, so the file keeps the local stack's addresses.
mh_write_config() {
  local file=${1:-$MH_CONFIG}
  mkdir -p "$(dirname "$file")"
  if [[ ! -f $file ]]; then
    mh_log "writing $file (new secrets)"
    (
      umask 077
      cat >"$file.tmp" <<EOF
# mailhook configuration for the local stack (deploy/local/up).
# Generated once; the secrets below are this machine's own. Delete the file to renew them.
[ingest]
listen = 127.0.0.1:$MH_INGEST_PORT

[worker]
group_id = mailhook-worker
$(mh_config_replication)

[postgres]
dsn = postgresql://postgres@127.0.0.1:$MH_PG_PORT/mailhook

[kafka]
bootstrap.servers = $(mh_kafka_local_brokers)
EOF
      mv "$file.tmp" "$file"
    ) || return 1
  fi
  # A config written before the local stack ran mailhook-api gets its section now.
  if ! grep -q '^\[api\]' "$file"; then
    mh_api_token >/dev/null || return 1
    printf '\n%s\n' "$(mh_config_api)" >>"$file"
  fi
  mh_config_sources "$file"
}

# mh_kafka_local_brokers: the local stack's Kafka, whatever MAILHOOK_KAFKA_BROKERS says.
mh_kafka_local_brokers() {
  if mh_kafka_cluster_mode; then mh_kafka_cluster_brokers; else printf '127.0.0.1:%s\n' "$MH_KAFKA_PORT"; fi
}

# mh_config_replication: for a cluster, the [worker] keys with which `mailhook topics`
# replicates the topics (a single broker takes its defaults).
mh_config_replication() {
  mh_kafka_cluster_mode || return 0
  printf 'replication_factor = %s\nmin_insync_replicas = %s\n' \
    "$(mh_kafka_cluster_rf)" "$(mh_kafka_cluster_min_isr)"
}

# mh_config_get FILE SECTION KEY: a value from an INI file (first match).
mh_config_get() {
  awk -v sec="[$2]" -v key="$3" '
    /^[ \t]*\[/ { gsub(/[ \t]/, ""); insec = ($0 == sec); next }
    insec && /=/ {
      k = $0; sub(/=.*/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", k)
      if (k == key) { v = $0; sub(/^[^=]*=/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v); print v; exit }
    }' "$1"
}

# ---------------------------------------------------------------------------------------
# mailhook processes

# mh_listen_url CONFIG SECTION DEFAULT: base URL of the `listen` address of SECTION in
# CONFIG (DEFAULT when it is not set).
mh_listen_url() {
  local listen host port
  listen=$(mh_config_get "$1" "$2" listen)
  listen=${listen:-$3}
  port=${listen##*:}
  host=${listen%:*}
  [[ $host == 0.0.0.0 || $host == '*' || -z $host ]] && host=127.0.0.1
  printf 'http://%s:%s\n' "$host" "$port"
}

# mh_ingest_url CONFIG / mh_api_url CONFIG: base URL of mailhook-ingest / mailhook-api.
mh_ingest_url() { mh_listen_url "$1" ingest 127.0.0.1:8080; }
mh_api_url() { mh_listen_url "$1" api 127.0.0.1:8081; }

# mh_http_start PROGRAM NAME URL CONFIG: start PROGRAM (pid file and log named NAME) and
# wait until URL/readyz answers.
mh_http_start() {
  local program=$1 name=$2 url=$3 config=$4 bin pid i
  bin="$(mh_build_dir)/$program"
  [[ -x $bin ]] || {
    mh_err "$bin not built"
    return 1
  }
  if pid=$(mh_pidfile_pid "$MH_RUN/$name.pid"); then
    mh_err "$program already running (pid $pid); mh_mailhook_stop first"
    return 1
  fi
  mh_rotate_log "$MH_LOG/$name.log"
  mh_log "starting $program ($url)"
  mh_spawn "$MH_RUN/$name.pid" "$MH_LOG/$name.log" "$bin" --config "$config" || return 1
  pid=$(cat "$MH_RUN/$name.pid")
  for ((i = 0; i < 150; i++)); do
    if ! mh_pid_alive "$pid"; then
      mh_err "$program exited during start-up"
      mh_tail "$MH_LOG/$name.log"
      return 1
    fi
    curl -fsS -o /dev/null --max-time 2 "$url/readyz" 2>/dev/null && return 0
    sleep 0.2
  done
  mh_err "$program (pid $pid) not ready after 30s ($url/readyz)"
  mh_tail "$MH_LOG/$name.log"
  return 1
}

# mh_ingest_start CONFIG: start mailhook-ingest and wait for /readyz.
mh_ingest_start() {
  mh_http_start mailhook-ingest ingest "$(mh_ingest_url "$1")" "$1"
}

# mh_api_start CONFIG: start mailhook-api and wait for /readyz.
mh_api_start() {
  mh_http_start mailhook-api api "$(mh_api_url "$1")" "$1"
}

# mh_worker_start CONFIG N: start N mailhook-worker processes (worker-1 .. worker-N).
mh_worker_start() {
  local config=$1 n=${2:-1} bin i pid
  bin="$(mh_build_dir)/mailhook-worker"
  [[ -x $bin ]] || {
    mh_err "$bin not built"
    return 1
  }
  for ((i = 1; i <= n; i++)); do
    if pid=$(mh_pidfile_pid "$MH_RUN/worker-$i.pid"); then
      mh_err "mailhook-worker $i already running (pid $pid); mh_mailhook_stop first"
      return 1
    fi
    mh_rotate_log "$MH_LOG/worker-$i.log"
    mh_log "starting mailhook-worker $i"
    mh_spawn "$MH_RUN/worker-$i.pid" "$MH_LOG/worker-$i.log" "$bin" --config "$config" --instance "worker-$i" || return 1
  done
  sleep 1
  for ((i = 1; i <= n; i++)); do
    mh_pidfile_pid "$MH_RUN/worker-$i.pid" >/dev/null || {
      mh_err "mailhook-worker $i exited during start-up"
      mh_tail "$MH_LOG/worker-$i.log"
      return 1
    }
  done
}

# mh_pidfiles_stop DIR TIMEOUT: stop every process with a pid file directly in DIR
# (SIGTERM to all at once, SIGKILL after TIMEOUT seconds) and remove the pid files.
mh_pidfiles_stop() {
  local dir=$1 timeout=${2:-10} f pid pids=() files=()
  [[ -d $dir ]] || return 0
  for f in "$dir"/*.pid; do
    [[ -f $f ]] || continue
    files+=("$f")
    pid=$(mh_pidfile_pid "$f") || continue
    pids+=("$pid")
    kill -TERM "$pid" 2>/dev/null || true
  done
  if ((${#pids[@]})) && ! mh_wait_gone "$timeout" "${pids[@]}"; then
    for pid in "${pids[@]}"; do
      if mh_pid_alive "$pid"; then
        mh_warn "pid $pid still running after ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
    mh_wait_gone 10 "${pids[@]}" || return 1
  fi
  ((${#files[@]} == 0)) || rm -f "${files[@]}"
}

# mh_mailhook_stop: stop the ingest, worker and api processes started by mh_*_start.
mh_mailhook_stop() {
  if compgen -G "$MH_RUN/*.pid" >/dev/null; then
    mh_log "stopping mailhook processes"
  fi
  mh_pidfiles_stop "$MH_RUN" 10
}

# mh_leftovers: print processes of this stack that still run (status 0 if any).
mh_leftovers() {
  local found=1 pid
  if pid=$(pgrep -f "kafka.Kafka $MH_KAFKA_HOME/server.properties"); then
    printf 'Kafka: %s\n' "$pid" | tr '\n' ' '
    echo
    found=0
  fi
  if pid=$(pgrep -f "kafka.Kafka $MH_KAFKA_CLUSTER_HOME/[0-9]+/server.properties"); then
    printf 'Kafka cluster: %s\n' "$pid" | tr '\n' ' '
    echo
    found=0
  fi
  if pid=$(mh_pg_running); then
    printf 'PostgreSQL: %s\n' "$pid"
    found=0
  fi
  # Only mailhook programs run with this stack's config or one under $MH_LOCAL (the test
  # fixtures'): another stack on this machine may run the same binaries.
  local d
  for d in "$MH_ROOT"/build*/ "$(mh_build_dir)/"; do
    [[ -d $d ]] || continue
    if pid=$(pgrep -f "^${d%/}/mailhook-(ingest|worker|api) --config ($MH_CONFIG|$MH_LOCAL/)"); then
      printf 'mailhook: %s\n' "$pid" | tr '\n' ' '
      echo
      found=0
    fi
  done
  return $found
}

# The multi-node Kafka cluster (MH_KAFKA_BROKERS_N > 1).
# shellcheck source=deploy/local/cluster.sh
source "$MH_ROOT/deploy/local/cluster.sh"
