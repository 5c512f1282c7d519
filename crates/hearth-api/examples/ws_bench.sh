#!/usr/bin/env bash
# The WebSocket benchmarks of docs/benchmarks.md, and their anchor, in one run:
#  1. idle: gateway RSS before and with N_IDLE authenticated idle sockets -> KiB per socket;
#  2. echo: {"type":"ping"} -> {"type":"pong"} at ECHO_CONNS connections, one in flight each;
#  3. broadcast: one big_win to BCAST_N subscribed sockets, BCAST_REPEAT times, the gateway on
#     the Redis hub and the publish made through hearth_realtime::RedisHub (as another gateway
#     would): per-socket latency p50 / p99 / max;
#  4. the anchor ../shared/anchors/05_ws.sh (bare axum WebSocket echo server, default and 4 KiB
#     read buffer) in the same run, and the ratios.
# Each phase runs a fresh release gateway on a fresh SQLite file (the embedded default), its
# limits raised so that they are never the bottleneck but still run on every message.
#
# usage: bash crates/hearth-api/examples/ws_bench.sh         (from the repository root)
# env:   N_IDLE (100000)  SOURCES (8: client source addresses 127.0.0.1..127.0.0.SOURCES)
#        ECHO_CONNS (100)  ECHO_SECS (10)  BCAST_N (10000)  BCAST_REPEAT (10)  PORT (8090)
#        REDIS_URL (redis://127.0.0.1:6379)  PHASES ("anchor idle echo broadcast")
#        WS_KINDS ("axum axum:4096", for the anchor)  QUIET_MAX (20 s, the anchor's wait for a
#        quiet machine)  SKIP_BUILD (unset)  CARGO_TARGET_DIR (target)
# Needs: root (or CAP_SYS_RESOURCE) to raise the open-file limit past the hard limit; the
# scratch directory is /tmp/wsbench (WSBENCH_SCRATCH).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SCRATCH="${WSBENCH_SCRATCH:-/tmp/wsbench}"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
N_IDLE="${N_IDLE:-100000}"
SOURCES="${SOURCES:-8}"
ECHO_CONNS="${ECHO_CONNS:-100}"
ECHO_SECS="${ECHO_SECS:-10}"
BCAST_N="${BCAST_N:-10000}"
BCAST_REPEAT="${BCAST_REPEAT:-10}"
PORT="${PORT:-8090}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
PHASES="${PHASES:-anchor idle echo broadcast}"
mkdir -p "$SCRATCH"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

# ---- limits of the machine ----------------------------------------------------------------
# Each socket is one file descriptor in the gateway and one in the client (both started from
# this shell, so both inherit the limit). Raising the hard limit needs root with
# CAP_SYS_RESOURCE; fs.nr_open caps it. Where it cannot be raised (a container without that
# capability), N_IDLE is lowered to what the hard limit allows, and the run says so.
need=$(( (N_IDLE > BCAST_N ? N_IDLE : BCAST_N) + 1000 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  if ! ulimit -Hn "$need" 2>/dev/null; then
    log "WARNING: cannot raise the hard open-file limit $hard to $need (needs CAP_SYS_RESOURCE;" \
        "fs.nr_open is $(cat /proc/sys/fs/nr_open)); idle sockets lowered to $((hard - 1000))"
    N_IDLE=$((hard - 1000))
    need=$hard
  fi
fi
ulimit -n "$need"
read -r PORT_LO PORT_HI < /proc/sys/net/ipv4/ip_local_port_range
PER_SOURCE=$((PORT_HI - PORT_LO + 1))
if [ $((PER_SOURCE * SOURCES)) -lt $((N_IDLE + 1000)) ]; then
  echo "$SOURCES source addresses x $PER_SOURCE ephemeral ports cannot hold $N_IDLE sockets:" \
       "raise SOURCES (127.0.0.0/8 is all loopback) or net.ipv4.ip_local_port_range" >&2
  exit 1
fi
log "ulimit -n $(ulimit -n); ports $PORT_LO-$PORT_HI ($PER_SOURCE per source) x $SOURCES sources;" \
    "fs.nr_open $(cat /proc/sys/fs/nr_open); somaxconn $(cat /proc/sys/net/core/somaxconn)"

# ---- build ----------------------------------------------------------------------------------
if [ -z "${SKIP_BUILD:-}" ]; then
  log "cargo build --release (gateway, ws_load) into $TARGET"
  # One invocation: built apart, the example's dev-dependencies would change features of
  # shared crates and rebuild half of the gateway's dependencies a second time.
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p hearth-gateway \
    -p hearth-api --bin hearth-gateway --example ws_load)
fi
GATEWAY="$TARGET/release/hearth-gateway"
LOAD="$TARGET/release/examples/ws_load"
BASE="http://127.0.0.1:$PORT"

# ---- helpers --------------------------------------------------------------------------------
GPID=""
CPID=""
stop_started() {
  for p in $CPID $GPID; do
    if kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  CPID=""; GPID=""
}
trap stop_started EXIT
trap 'exit 143' TERM INT

rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
cw_begin() { python3 "$ANCHORS/cpuwatch.py" snap "$SCRATCH/.cw_snap"; }
cw_end() { python3 "$ANCHORS/cpuwatch.py" foreign "$SCRATCH/.cw_snap" "$$"; }

# start_gateway NAME [VAR=value ...]: a fresh gateway on a fresh SQLite file.
start_gateway() {
  local name="$1"; shift
  rm -f "$SCRATCH/$name.db" "$SCRATCH/$name.db-wal" "$SCRATCH/$name.db-shm"
  env HEARTH__SERVER__ADDR="127.0.0.1:$PORT" \
      HEARTH__DATABASE__URL="sqlite://$SCRATCH/$name.db" \
      HEARTH__LOG__FORMAT=json \
      HEARTH__AUTH__BCRYPT_COST=4 \
      HEARTH__LIMITS__RULES__IP__PER_MINUTE=1000000000 \
      HEARTH__LIMITS__RULES__SIGNUP__PER_HOUR=1000000 \
      HEARTH__LIMITS__RULES__LOGIN__PER_MINUTE=1000000 \
      HEARTH__LIMITS__RULES__WEBSOCKET__PER_MINUTE=1000000000 \
      "$@" "$GATEWAY" >"$SCRATCH/$name.gateway.log" 2>&1 &
  GPID=$!
  for _ in $(seq 300); do
    curl -fsS "$BASE/health/live" >/dev/null 2>&1 && { sleep 1; return 0; }
    kill -0 "$GPID" 2>/dev/null || break
    sleep 0.1
  done
  tail -5 "$SCRATCH/$name.gateway.log" >&2
  echo "the gateway did not start" >&2
  exit 1
}

field() { sed -n "s/.*[ ^]$1=\([^ ]*\).*/\1/p" <<<" $2" | head -1; }
SUMMARY=()

# ---- the anchor -----------------------------------------------------------------------------
if has_phase anchor; then
  log "anchor: $ANCHORS/05_ws.sh WS_KINDS='${WS_KINDS:-axum axum:4096}' REPS=1"
  ANCHOR_LINE=$(WS_KINDS="${WS_KINDS:-axum axum:4096}" REPS=1 QUIET_MAX="${QUIET_MAX:-20}" \
    bash "$ANCHORS/05_ws.sh" 2> >(tee "$SCRATCH/anchor.log" >&2))
  echo "$ANCHOR_LINE" >"$SCRATCH/anchor.txt"
  log "anchor: $ANCHOR_LINE"
fi
anchor_figure() { # kind what -> median of the anchor's min/median/max
  [ -f "$SCRATCH/anchor.txt" ] || { echo ""; return; }
  python3 - "$1" "$2" "$SCRATCH/anchor.txt" <<'PY'
import re, sys
kind, what, path = sys.argv[1:]
line = open(path).read()
for part in line.split(";"):
    words = part.split()
    if kind not in words:
        continue
    m = re.search(re.escape(what) + r"=([0-9.]+)/([0-9.]+)/([0-9.]+)", part)
    if m:
        print(m.group(2)); break
PY
}

# ---- idle sockets ---------------------------------------------------------------------------
if has_phase idle; then
  start_gateway idle
  r0=$(rss_kib "$GPID")
  f="$SCRATCH/idle.txt"
  cw_begin
  "$LOAD" --base "$BASE" --sources "$SOURCES" --concurrency 256 --hold 20 idle "$N_IDLE" >"$f" &
  CPID=$!
  for _ in $(seq 6000); do grep -q '^opened=' "$f" && break; kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
  grep -q '^opened=' "$f" || { echo "idle client failed" >&2; exit 1; }
  sleep 5
  r1=$(rss_kib "$GPID")
  foreign=$(cw_end)
  wait "$CPID" || true
  CPID=""
  opened=$(field opened "$(grep '^opened=' "$f")")
  still=$(field still_open "$(grep '^held_secs=' "$f" || true)")
  per=$(python3 -c "print(f'{($r1 - $r0) / max(1, $opened):.2f}')")
  log "idle: $(cat "$f" | tr '\n' ' ')"
  log "idle: gateway rss base=${r0} KiB with_sockets=${r1} KiB -> ${per} KiB/socket; foreign_cpu=$foreign"
  a=$(anchor_figure axum:4096 KiB/conn); ad=$(anchor_figure axum KiB/conn)
  SUMMARY+=("idle sockets=$opened of $N_IDLE (still open after 20 s: ${still:-?}) gateway_rss_MiB=$((r0 / 1024))->$((r1 / 1024)) KiB/socket=$per anchor_axum4096_KiB/conn=${a:-n/a} ratio=$( [ -n "$a" ] && python3 -c "print(f'{$per / $a:.2f}')" || echo n/a) anchor_axum_default_KiB/conn=${ad:-n/a} foreign_cpu=${foreign%% *}")
  stop_started
fi

# ---- ping/pong throughput -------------------------------------------------------------------
if has_phase echo; then
  start_gateway echo
  "$LOAD" --base "$BASE" echo "$ECHO_CONNS" 2 >/dev/null   # warm-up
  cw_begin
  c0=$(cpu_secs "$GPID")
  line=$("$LOAD" --base "$BASE" echo "$ECHO_CONNS" "$ECHO_SECS")
  c1=$(cpu_secs "$GPID")
  foreign=$(cw_end)
  log "echo: $line gateway_cpu_s=$(python3 -c "print(f'{$c1 - $c0:.1f}')") foreign_cpu=$foreign"
  m=$(field msgs_per_s "$line")
  a=$(anchor_figure axum:4096 msgs/s); ad=$(anchor_figure axum msgs/s)
  SUMMARY+=("echo c$ECHO_CONNS msgs/s=$m rtt_p50_ms=$(field rtt_p50_ms "$line") rtt_p99_ms=$(field rtt_p99_ms "$line") refused=$(field refused "$line") anchor_axum4096_msgs/s=${a:-n/a} ratio=$( [ -n "$a" ] && python3 -c "print(f'{$m / $a:.2f}')" || echo n/a) anchor_axum_default_msgs/s=${ad:-n/a} ratio_default=$( [ -n "$ad" ] && python3 -c "print(f'{$m / $ad:.2f}')" || echo n/a) foreign_cpu=${foreign%% *}")
  stop_started
fi

# ---- one broadcast to many sockets ----------------------------------------------------------
if has_phase broadcast; then
  PREFIX="wsbench$$:"
  start_gateway broadcast HEARTH__REDIS__URL="$REDIS_URL" HEARTH__REDIS__KEY_PREFIX="$PREFIX"
  cw_begin
  "$LOAD" --base "$BASE" --sources "$SOURCES" --redis "$REDIS_URL" --prefix "$PREFIX" \
    --repeat "$BCAST_REPEAT" broadcast "$BCAST_N" | tee "$SCRATCH/broadcast.txt" >&2
  foreign=$(cw_end)
  line=$(grep '^broadcast sockets=' "$SCRATCH/broadcast.txt")
  SUMMARY+=("$line foreign_cpu=${foreign%% *}")
  stop_started
  # The run's keys (rate limits, revocation sentinels) under its own prefix.
  redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" 2>/dev/null \
    | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
fi

echo "WEBSOCKET $(date -u +%FT%TZ) $(nproc) cores"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
[ -f "$SCRATCH/anchor.txt" ] && echo "  anchor: $(cat "$SCRATCH/anchor.txt")"
