#!/usr/bin/env bash
# A real single-node OpenSearch for tests, CI, development and benchmarks - no Docker needed.
#
#   scripts/opensearch.sh install          download (Maven Central) + unpack into the cache; prints the home
#   scripts/opensearch.sh start [RUN_DIR]  start a node (data, logs, config, pid under RUN_DIR); prints URL
#   scripts/opensearch.sh stop [RUN_DIR]   stop the node started in RUN_DIR (pid file)
#   scripts/opensearch.sh status [RUN_DIR] print the URL and health, exit 1 when not running
#
# Environment:
#   OPENSEARCH_VERSION  2.19.1 (the newest 2.19.x for which both the integ-test zip and the k-NN zip
#                       are on Maven Central)
#   OPENSEARCH_PORT     HTTP port on 127.0.0.1 (default 9200)
#   DATATORAG_CACHE     cache root (default ~/.cache/datatorag), kept outside the clone
#   OPENSEARCH_START_TIMEOUT  seconds to wait for green/yellow health (default 240)
#
# Maven Central carries only the minimal "integ-test" distribution: no modules besides
# transport-netty4. Three modules are rebuilt from their published jars: lang-painless (the k-NN
# plugin extends it), reindex (delete_by_query lives there) and analysis-common (the "english"
# analyzer of the BM25 fields: stemming and stop words). The k-NN zip has no native libraries
# (faiss/nmslib): the Lucene engine works, native engines fail at index creation.
set -euo pipefail

VERSION="${OPENSEARCH_VERSION:-2.19.1}"
KNN_VERSION="${VERSION}.0"
PORT="${OPENSEARCH_PORT:-9200}"
CACHE="${DATATORAG_CACHE:-$HOME/.cache/datatorag}"
# the install layout's revision: a new one installs next to an older home (a node may be running
# from it) instead of replacing it
LAYOUT=2
HOME_DIR="$CACHE/opensearch-$VERSION-r$LAYOUT"
DL_DIR="$CACHE/downloads"
MARKER="$HOME_DIR/.datatorag-installed"
START_TIMEOUT="${OPENSEARCH_START_TIMEOUT:-240}"

# The integ-test zip bundles no JDK: use the system one (17+).
if [[ -z "${OPENSEARCH_JAVA_HOME:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" ]]; then
    export OPENSEARCH_JAVA_HOME="$JAVA_HOME"
  elif command -v java >/dev/null 2>&1; then
    OPENSEARCH_JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
    export OPENSEARCH_JAVA_HOME
  fi
fi

log() { echo "opensearch.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required (apt-get install $2)"; }

mvn_quiet() { # run mvn, show its output only when it fails
  local out; out="$(mktemp)"
  if ! mvn -B -q "$@" >"$out" 2>&1; then cat "$out" >&2; rm -f "$out"; return 1; fi
  rm -f "$out"
}

mvn_copy() { # artifact outdir
  mvn_quiet dependency:copy -Dartifact="$1" -DoutputDirectory="$2" \
    || die "mvn could not fetch $1 from Maven Central"
}

# A module rebuilt from Maven jars: its jar + runtime dependencies, minus what core already ships.
build_module() { # dir name artifact classname description policy
  local home="$1" name="$2" artifact="$3" classname="$4" description="$5" policy="$6"
  local work="$home/.build-$name" dest="$home/modules/$name"
  mkdir -p "$work/jars" "$dest"
  local group="${artifact%%:*}" rest="${artifact#*:}"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.datatorag</groupId><artifactId>module-$name</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>$group</groupId><artifactId>$rest</artifactId><version>$VERSION</version></dependency>
  </dependencies>
</project>
EOF
  mvn_quiet -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$work/jars" || die "mvn could not fetch $artifact and its dependencies"
  local jar base
  for jar in "$work"/jars/*.jar; do
    base="$(basename "$jar")"
    # jar hell: skip anything core already has (same artifact, any version)
    if ls "$home/lib/${base%-[0-9]*}"-[0-9]*.jar >/dev/null 2>&1; then continue; fi
    cp "$jar" "$dest/"
  done
  cat >"$dest/plugin-descriptor.properties" <<EOF
description=$description
version=$VERSION
name=$name
classname=$classname
java.version=11
opensearch.version=$VERSION
custom.foldername=
extended.plugins=
has.native.controller=false
EOF
  printf '%s\n' "$policy" >"$dest/plugin-security.policy"
  rm -rf "$work"
}

cmd_install() {
  if [[ -f "$MARKER" ]]; then echo "$HOME_DIR"; return 0; fi
  need java openjdk-17-jre-headless
  need mvn maven
  need unzip unzip
  mkdir -p "$CACHE" "$DL_DIR"
  # Serialise concurrent installs (parallel test sessions); the loser finds the marker.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/opensearch-$VERSION.lock"
    flock 9
  fi
  if [[ -f "$MARKER" ]]; then echo "$HOME_DIR"; return 0; fi

  local dist="$DL_DIR/opensearch-$VERSION.zip" knn="$DL_DIR/opensearch-knn-$KNN_VERSION.zip"
  [[ -f "$dist" ]] || mvn_copy "org.opensearch.distribution.integ-test-zip:opensearch:$VERSION:zip" "$DL_DIR"
  [[ -f "$knn" ]] || mvn_copy "org.opensearch.plugin:opensearch-knn:$KNN_VERSION:zip" "$DL_DIR"

  local tmp="$CACHE/.opensearch-$VERSION.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  unzip -q "$dist" -d "$tmp"
  local home="$tmp/opensearch-$VERSION"
  [[ -x "$home/bin/opensearch" ]] || die "unexpected layout in $dist"

  build_module "$home" lang-painless org.opensearch.plugin:lang-painless \
    org.opensearch.painless.PainlessPlugin \
    "An easy, safe and fast scripting language for OpenSearch" \
    'grant { permission java.lang.RuntimePermission "createClassLoader"; permission java.lang.RuntimePermission "getClassLoader"; };'
  build_module "$home" analysis-common org.opensearch.plugin:analysis-common \
    org.opensearch.analysis.common.CommonAnalysisPlugin \
    "Adds analysis components: language analyzers (english), stemmers, stop words" \
    ''
  build_module "$home" reindex org.opensearch.plugin:reindex-client \
    org.opensearch.index.reindex.ReindexPlugin \
    "The Reindex module adds APIs to reindex from one index to another or update documents in place." \
    'grant { permission java.net.SocketPermission "*", "connect"; };
grant codeBase "${codebase.opensearch-rest-client}" { permission java.net.NetPermission "getProxySelector"; };
grant codeBase "${codebase.httpasyncclient}" { permission java.net.NetPermission "getProxySelector"; };'

  "$home/bin/opensearch-plugin" install --batch "file://$knn" >&2 \
    || die "k-NN plugin install failed"

  rm -rf "$HOME_DIR"
  mv "$home" "$HOME_DIR"
  rm -rf "$tmp"
  touch "$MARKER"
  log "installed OpenSearch $VERSION with k-NN into $HOME_DIR"
  echo "$HOME_DIR"
}

run_dir() { # absolute, as OpenSearch reports its config path (pid_alive matches on it)
  local dir="${1:-$CACHE/run-$PORT}"
  [[ "$dir" == /* ]] || dir="$PWD/$dir"
  echo "${dir%/}"
}
url() { echo "http://127.0.0.1:$PORT"; }

health() { # prints the cluster status (green/yellow/red) or nothing
  curl -fsS --max-time 2 "$(url)/_cluster/health" 2>/dev/null \
    | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' || true
}

pid_alive() { # run_dir: its node runs (the pid is alive and is a node of this run dir)
  local pid
  pid="$(cat "$1/opensearch.pid" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && ps -ww -p "$pid" -o args= 2>/dev/null | grep -qF -- "$1/config"
}

write_config() { # run_dir
  local run="$1" conf="$1/config"
  mkdir -p "$conf/jvm.options.d" "$run/data" "$run/logs" "$run/tmp"
  cp "$HOME_DIR/config/log4j2.properties" "$conf/"
  # jvm.options paths are relative to the install; point them at this node's own dirs
  sed -e "s#logs/gc.log#$run/logs/gc.log#" -e "s#HeapDumpPath=data#HeapDumpPath=$run/data#" \
      -e "s#ErrorFile=logs/#ErrorFile=$run/logs/#" \
      "$HOME_DIR/config/jvm.options" >"$conf/jvm.options"
  cat >"$conf/opensearch.yml" <<EOF
cluster.name: datatorag-$PORT
node.name: datatorag-$PORT
network.host: 127.0.0.1
http.port: $PORT
transport.port: 9300-9500
discovery.type: single-node
path.data: $run/data
path.logs: $run/logs
# shared dev/CI machines often have full-ish disks: never block writes on disk usage
cluster.routing.allocation.disk.threshold_enabled: false
cluster.routing.allocation.disk.watermark.low: 99%
cluster.routing.allocation.disk.watermark.high: 99%
cluster.routing.allocation.disk.watermark.flood_stage: 99%
# tests create and drop many small indices
action.destructive_requires_name: false
EOF
}

cmd_start() {
  local run; run="$(run_dir "${1:-}")"
  if pid_alive "$run"; then wait_healthy "$run"; return; fi  # started earlier (maybe still booting)
  if [[ -n "$(health)" ]]; then die "port $PORT already serves another OpenSearch (not started from $run)"; fi
  (cmd_install) >/dev/null  # a subshell: the node must not inherit the install lock's fd
  mkdir -p "$run"
  write_config "$run"
  rm -f "$run/opensearch.pid"
  local java_opts="-Xms512m -Xmx512m"
  # OpenSearch refuses to run as root, and finds out through JNA; without JNA it cannot tell
  # (it then also skips mlockall/seccomp, which a loopback-only dev node does not need).
  if [[ "$(id -u)" == 0 ]]; then
    java_opts="$java_opts -Djna.nosys=true -Djna.nounpack=true -Djna.boot.library.path=/nonexistent"
  fi
  # Foreground mode, backgrounded here: bin/opensearch execs java, so $! is the node's pid and a
  # node that dies while booting (port taken, bad setting) is noticed at once.
  (
    cd "$run"
    export OPENSEARCH_PATH_CONF="$run/config" OPENSEARCH_TMPDIR="$run/tmp"
    export OPENSEARCH_JAVA_OPTS="$java_opts ${OPENSEARCH_EXTRA_JAVA_OPTS:-}"
    exec "$HOME_DIR/bin/opensearch" </dev/null >"$run/logs/stdout.log" 2>&1
  ) &
  echo $! >"$run/opensearch.pid"

  wait_healthy "$run"
}

wait_healthy() { # run_dir: wait for green/yellow, print the URL; on failure show logs, stop, fail
  local run="$1" deadline=$((SECONDS + START_TIMEOUT)) status=""
  while ((SECONDS < deadline)); do
    kill -0 "$(cat "$run/opensearch.pid")" 2>/dev/null || break  # died while booting
    status="$(health)"
    if [[ "$status" == green || "$status" == yellow ]]; then url; return 0; fi
    sleep 1
  done
  tail -n 40 "$run/logs/datatorag-$PORT.log" "$run/logs/stdout.log" >&2 2>/dev/null || true
  cmd_stop "$run" >/dev/null 2>&1 || true
  die "OpenSearch on port $PORT did not become healthy (see $run/logs)"
}

cmd_stop() {
  local run; run="$(run_dir "${1:-}")"
  if ! pid_alive "$run"; then rm -f "$run/opensearch.pid"; log "not running ($run)"; return 0; fi
  local pid; pid="$(cat "$run/opensearch.pid")"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM; killing"; kill -9 "$pid"; fi
  rm -f "$run/opensearch.pid"
  log "stopped pid $pid"
}

cmd_status() {
  local run status; run="$(run_dir "${1:-}")"
  status="$(health)"
  if [[ -z "$status" ]]; then log "not running on port $PORT"; return 1; fi
  echo "$(url) $status$(pid_alive "$run" && echo " pid=$(cat "$run/opensearch.pid")")"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  status) cmd_status "${2:-}" ;;
  *) echo "usage: $0 {install|start|stop|status} [RUN_DIR]" >&2; exit 2 ;;
esac
