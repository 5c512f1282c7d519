#!/usr/bin/env bash
# The load harness: the release gateway on embedded SQLite under wrk, beside the anchors
# (../shared/anchors: 01_http.sh, bare hyper; 06_sqlite.sh, the SQLite single-writer debit) in
# the same run, printed as one table of ratios. See docs/benchmarks.md, "Under wrk".
#
# usage: bash bench/load/run.sh          (from anywhere; builds the gateway unless NO_BUILD=1)
# env:   ANCHORS (../shared/anchors relative to the repository, else /work/shared/anchors),
#        DUR (wrk seconds per run, 10), PLAYERS (50), SPIN_CONNS (16), HTTP_CONNS (64),
#        PORT (58180), SKIP_ANCHORS=1 (reuse the anchor lines in $OUT), OUT (/tmp/hearth-load),
#        CARGO_TARGET_DIR (where the release gateway is built), GATEWAY (another binary to load,
#        e.g. an older build; then set NO_BUILD=1), PERF (a case: health, unknown, me or spin,
#        recorded by `perf record --call-graph dwarf` into $OUT/<case>.perf.data; build with
#        `--profile profiling` for line tables), PERF_FREQ (499).
# Needs wrk (Debian package `wrk`), python3, curl. Stops only what it started, by PID.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ANCHORS="${ANCHORS:-$REPO/../shared/anchors}"
[ -d "$ANCHORS" ] || ANCHORS=/work/shared/anchors
DUR="${DUR:-10}"
PLAYERS="${PLAYERS:-50}"
SPIN_CONNS="${SPIN_CONNS:-16}"
HTTP_CONNS="${HTTP_CONNS:-64}"
PORT="${PORT:-58180}"
OUT="${OUT:-/tmp/hearth-load}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

if [ "${NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release -p hearth-gateway"
  (cd "$REPO" && cargo build --release --locked -q -p hearth-gateway)
fi
GATEWAY="${GATEWAY:-$TARGET/release/hearth-gateway}"

# --- anchors, same run ----------------------------------------------------------------------
if [ "${SKIP_ANCHORS:-0}" != 1 ]; then
  # On a shared machine the anchors' quiet wait (up to 300 s a run) and repeats would take most
  # of an hour; a shorter wait, one try, and the foreign CPU they print instead.
  export QUIET_MAX="${QUIET_MAX:-30}" CW_TRIES="${CW_TRIES:-1}"
  log "anchor 01_http.sh (hyper only)"
  HTTP_KINDS=hyper REPS=1 DUR="${DUR}s" bash "$ANCHORS/01_http.sh" >"$OUT/anchor_http.txt"
  log "anchor 06_sqlite.sh"
  DUR="$DUR" bash "$ANCHORS/06_sqlite.sh" >"$OUT/anchor_sqlite.txt"
fi
cat "$OUT/anchor_http.txt" "$OUT/anchor_sqlite.txt" >&2

# --- the gateway on a fresh SQLite file -----------------------------------------------------
DB_DIR="$(mktemp -d "$OUT/db.XXXXXX")"
export HEARTH__DATABASE__URL="sqlite://$DB_DIR/hearth.db"
export HEARTH__SERVER__ADDR="127.0.0.1:$PORT"
# Set-up logins are bcrypt-bound; the runs measure no hashing.
export HEARTH__AUTH__BCRYPT_COST=4
export HEARTH__WALLET__STARTING_BALANCE=100000000
# What production writes: one JSON line per request (the embedded default logs pretty text).
export HEARTH__LOG__FORMAT=json
for rule in IP USER LOGIN SIGNUP GAME; do
  export "HEARTH__LIMITS__RULES__${rule}__PER_MINUTE=100000000"
  export "HEARTH__LIMITS__RULES__${rule}__PER_HOUR=off"
done
"$GATEWAY" migrate >"$OUT/migrate.log" 2>&1
"$GATEWAY" serve >"$OUT/gateway.log" 2>&1 &
GW=$!
trap 'kill "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/live" >/dev/null && break; sleep 0.1; done

log "registering $PLAYERS players"
python3 - "$PORT" "$PLAYERS" "$OUT/tokens.txt" <<'PY'
import json, sys, urllib.request, uuid
port, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
run = uuid.uuid4().hex[:8]
def post(route, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{route}", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")
tokens = []
for i in range(n):
    name = f"wrk{run}_{i}"
    post("/v1/auth/register", {"username": name, "email": f"{name}@example.com", "password": "Tr0ub4dor&3x"})
    tokens.append(post("/v1/auth/login", {"login": name, "password": "Tr0ub4dor&3x"})["access_token"])
open(path, "w").write("\n".join(tokens) + "\n")
PY

cpu_ticks() { awk '{print $14 + $15}' "/proc/$GW/stat"; }
HZ=$(getconf CLK_TCK)
# run NAME CONNS [wrk args...] -> $OUT/NAME.txt plus "$OUT/NAME.cpu" (gateway CPU seconds)
run() {
  local name="$1" conns="$2"; shift 2
  local t0 t1
  # Each case starts with the page cache written back: the previous case's log lines (hundreds
  # of MB at c64) would otherwise be flushed during this one, beside the database's fsyncs.
  sync
  t0=$(cpu_ticks)
  local perf_pid=""
  if [ "${PERF:-}" = "$name" ]; then
    perf record -q -F "${PERF_FREQ:-499}" --call-graph dwarf,32768 -p "$GW" \
      -o "$OUT/$name.perf.data" -- sleep "$DUR" 2>"$OUT/$name.perf.log" &
    perf_pid=$!
  fi
  WRK_THREADS=2 LUA_DIR="$HERE" TOKENS="$OUT/tokens.txt" RUN_ID="$(date +%s%N)" \
    wrk -t2 -c"$conns" -d"${DUR}s" --latency "$@" >"$OUT/$name.txt"
  t1=$(cpu_ticks)
  [ -z "$perf_pid" ] || wait "$perf_pid"
  python3 -c "print(($t1 - $t0) / $HZ)" >"$OUT/$name.cpu"
  log "$name: $(grep -E 'Requests/sec' "$OUT/$name.txt")"
}
BASE="http://127.0.0.1:$PORT"
wrk -t2 -c"$HTTP_CONNS" -d2s "$BASE/health/live" >/dev/null   # warm-up
run health "$HTTP_CONNS" "$BASE/health/live"
run unknown "$HTTP_CONNS" "$BASE/v1/no-such-route"
run me "$HTTP_CONNS" -s "$HERE/me.lua" "$BASE"
run spin "$SPIN_CONNS" -s "$HERE/spin.lua" "$BASE"
FOREIGN=$(uptime | sed 's/.*load average: //')

python3 - "$OUT" "$FOREIGN" "$DUR" <<'PY'
import re, sys
out, load, dur = sys.argv[1], sys.argv[2], float(sys.argv[3])
def ms(v, u): return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]
def wrk(name):
    t = open(f"{out}/{name}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    total = int(re.search(r"(\d+) requests in", t).group(1))
    lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)}
    mx = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", t)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    cpu = float(open(f"{out}/{name}.cpu").read())
    return dict(rps=rps, p50=lat.get("50"), p99=lat.get("99"), max=ms(*mx.groups()),
                non2xx=int(non2xx.group(1)) if non2xx else 0,
                sock=sum(map(int, sock.groups())) if sock else 0,
                cpu_us=cpu / max(total, 1) * 1e6)
h = open(f"{out}/anchor_http.txt").read()
m = re.search(r"hyper / c64 rps=([\d.]+)/([\d.]+)/([\d.]+)", h)
hyper = float(m.group(2))
s = open(f"{out}/anchor_sqlite.txt").read()
m = re.search(r"debit 1/commit: (\d+) tps p50=([\d.]+)ms p99=([\d.]+)ms", s)
sqlite_tps, sqlite_p99 = float(m.group(1)), float(m.group(3))
m8 = re.search(r"8/commit: (\d+) debits/s", s)
rows = [
    ("GET /health/live, full stack, c64", "hyper hello c64", hyper, wrk("health"), 0.80, "ratio >= 0.80"),
    ("unknown /v1 path (404 problem), c64", "hyper hello c64", hyper, wrk("unknown"), 0.80, "ratio >= 0.80"),
    ("GET /v1/me, bearer, SQLite, c64", "hyper hello c64", hyper, wrk("me"), 0.40, "ratio >= 0.40"),
    ("slots spins, SQLite, players, c16", "SQLite debit 1/commit", sqlite_tps, wrk("spin"), 0.70,
     "ratio >= 0.70, p99 <= 25 ms, max <= 100 ms"),
]
print(f"anchors: hyper hello c64 {hyper:.0f} req/s; SQLite debit {sqlite_tps:.0f} tps (p99 {sqlite_p99:.2f} ms), "
      f"8 per commit {m8.group(1) if m8 else '?'} debits/s; load average at the end {load}")
print("| path | anchor (same run) | Hearth | p50 / p99 / max | gateway CPU per request | ratio | target | met |")
print("|---|---|---|---|---|---|---|---|")
for path, anchor, a, r, target, text in rows:
    ratio = r["rps"] / a
    met = ratio >= target
    if path.startswith("slots"):
        met = met and r["p99"] <= 25 and r["max"] <= 100
    errs = r["sock"] + (0 if path.startswith("unknown") else r["non2xx"])
    note = f" ({errs} errors)" if errs else ""
    print(f"| {path} | {anchor}: {a:,.0f}/s | {r['rps']:,.0f}/s{note} | {r['p50']:.2f} / {r['p99']:.2f} / {r['max']:.1f} ms "
          f"| {r['cpu_us']:.1f} µs | {ratio:.2f} | {text} | {'yes' if met else 'no'} |")
PY
