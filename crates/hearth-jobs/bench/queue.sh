#!/usr/bin/env bash
# Jobs/s through Hearth's queue on PostgreSQL (1 and 2 workers, batch 1 and 8) beside pgbench
# doing the same work in SQL, in the same run: the anchor "claim-and-delete" (one statement:
# DELETE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)) and "claim then complete" (the
# runner's two transactions: UPDATE … RETURNING under SKIP LOCKED, then DELETE), at 1 and 2
# clients. Uses the server at $PGHOST:$PGPORT (trust auth), in a database of its own that it
# creates and drops. Prints one line per case; REPS runs each (median taken by the reader).
# usage: crates/hearth-jobs/bench/queue.sh   env: JOBS (20000), REPS (3), PROFILE (release, or
#        dev to reuse a debug build), PGHOST, PGPORT, PGUSER
set -euo pipefail
cd "$(dirname "$0")/../../.."
JOBS="${JOBS:-20000}"
REPS="${REPS:-3}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DB=hearth_jobs_bench
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d "$DB")
scratch="$(mktemp -d)"
trap 'dropdb --if-exists "$DB" 2>/dev/null || true; rm -rf "$scratch"' EXIT

PROFILE="${PROFILE:-release}"
cargo build --profile "$PROFILE" -p hearth-jobs --example queue_throughput >&2
dir="$PROFILE"; [[ "$PROFILE" == dev ]] && dir=debug
bin="${CARGO_TARGET_DIR:-target}/$dir/examples/queue_throughput"

fresh() {
  dropdb --if-exists "$DB"
  createdb "$DB"
}

# The same table and indexes as the migration, filled with $JOBS due jobs.
fill() {
  "${PSQL[@]}" -c "TRUNCATE jobs" -c "INSERT INTO jobs (id, kind, payload, state, attempts,
      max_attempts, run_at_ms, created_at_ms)
    SELECT gen_random_uuid(), 'bench.noop', '{}', 'queued', 0, 3,
      (extract(epoch FROM now()) * 1000)::bigint - 1000 + g, 0
    FROM generate_series(1, $JOBS) g" -c "VACUUM ANALYZE jobs"
}

cat >"$scratch/delete.sql" <<'SQL'
DELETE FROM jobs WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_at_ms <= 9000000000000 ORDER BY run_at_ms LIMIT 1 FOR UPDATE SKIP LOCKED);
SQL
cat >"$scratch/claim_complete.sql" <<'SQL'
WITH claimed AS (UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = gen_random_uuid(), lease_until_ms = 9000000000000 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND run_at_ms <= 9000000000000 ORDER BY run_at_ms LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id) SELECT coalesce((SELECT id FROM claimed), '00000000-0000-0000-0000-000000000000') AS id \gset
DELETE FROM jobs WHERE id = :id AND state = 'running';
SQL

for rep in $(seq 1 "$REPS"); do
  for workers in 1 2; do
    for batch in 1 8; do
      fresh
      HEARTH_BENCH_DATABASE_URL="$URL" "$bin" "$JOBS" "$workers" "$batch"
    done
    for script in delete claim_complete; do
      fresh
      # The runner's migration makes the table; run one empty drain to apply it.
      HEARTH_BENCH_DATABASE_URL="$URL" "$bin" 0 1 1 >/dev/null
      fill
      if ! out=$(pgbench -n -M prepared -c "$workers" -j "$workers" -t $((JOBS / workers)) \
        -f "$scratch/$script.sql" "$DB" 2>"$scratch/pgbench.err"); then
        cat "$scratch/pgbench.err" >&2
        exit 1
      fi
      tps=$(awk '/^tps/ {print int($3)}' <<<"$out")
      echo "pgbench $script clients=$workers jobs=$JOBS jobs_per_s=$tps"
    done
  done
done
