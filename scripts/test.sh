#!/usr/bin/env bash
# `npm test`: brings the local stack up (idempotent, reuses what is healthy), checks types and the
# generated config docs, then runs unit and integration tests with Node's test runner.
#   npm test -- test/convergence.int.test.ts     run only some files
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/stack.sh up
# Leftovers of an interrupted earlier run: inactive test slots retain WAL, test databases take space
# (databases still in use by a test running elsewhere are left alone).
psql -X -q -h 127.0.0.1 -U postgres -d postgres -At <<'SQL' >/dev/null
-- A test's own database is at most a few hours old; what belongs to a database that is gone or older
-- is a leftover (a test running elsewhere may have its slot inactive for a moment, between two captures).
create temp view recent_test_db as
  select datname from pg_database
  where datname like 'syncline\_t\_%' and (pg_stat_file('base/' || oid || '/PG_VERSION')).modification > now() - interval '2 hours';
select pg_drop_replication_slot(slot_name) from pg_replication_slots s
  where slot_name ~ '^t[0-9a-f]{8}_' and not active and s.database not in (select datname from recent_test_db);
-- Replication origins of two-way test pipelines (syncline:t<id>:…; one in use by a running test fails to drop and stays).
select pg_replication_origin_drop(roname) from pg_replication_origin
  where roname ~ '^syncline:t[0-9a-f]{8}:'
    and not exists (select 1 from recent_test_db where datname like 'syncline\_t\_' || substr(roname, 11, 8) || '\_%');
SQL
# Only databases created over two hours ago (PG_VERSION is written when a database is created): a test
# running elsewhere may hold none of its connections open for a moment, and must not lose its database.
for db in $(psql -X -h 127.0.0.1 -U postgres -d postgres -At -c "select datname from pg_database where datname like 'syncline\_t\_%' and (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '2 hours'"); do
  psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists \"$db\"" >/dev/null || true
done
# The same for MariaDB test databases (syncline_t_…): their directory under the datadir is older than two hours.
if command -v mysql >/dev/null && mysql -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1; then
  datadir="$(mysql -uroot -h127.0.0.1 -N -e 'select @@datadir')"
  for db in $(mysql -uroot -h127.0.0.1 -N -e "select schema_name from information_schema.schemata where schema_name like 'syncline\\_t\\_%'"); do
    if [ -d "$datadir/$db" ] && [ -n "$(find "$datadir/$db" -maxdepth 0 -mmin +120)" ]; then
      mysql -uroot -h127.0.0.1 -e "drop database if exists \`$db\`" >/dev/null 2>&1 || true
    fi
  done
fi
# The type check also compiles into dist/ (what `npm run build` and the image run): the tests start the
# CLI from there (test/helpers.ts cliArgs), ~1.5 s less CPU per start than through tsx's loader hooks.
npx tsc -p tsconfig.json
export SYNCLINE_TEST_DIST=1
npx tsx scripts/gen-config-docs.ts --check
if [ "$#" -gt 0 ]; then files=("$@"); else
  mapfile -t files < <(find src connectors test bench -name '*.test.ts' | sort)
fi
# Test files run two at a time: each uses databases, topics, slots and pipeline ids of its own on the
# shared stack, and most of their time is spent waiting (for a consumer group, a poll, a checkpoint).
# A file whose first 40 lines say `npm test: alone` runs after those, by itself: it starts a private
# stack (JVMs that want both cores) or injects faults whose timing must not be stretched by a neighbour.
export NODE_ENV=test
# The kafkajs produce path is replaced before kafkajs loads (src/core/kafkajs-patch.ts): preloaded
# here so the stages tests run in-process take the path production takes, whatever a test file imports first.
# Each file's time goes to reports/test-times.txt (scripts/test-times.mjs); the slowest are printed at the end.
mkdir -p reports
export SYNCLINE_TEST_FAILURES="$PWD/reports/test-failures.txt"
: > "$SYNCLINE_TEST_FAILURES"
together=(); alone=()
for f in "${files[@]}"; do
  if head -40 "$f" | grep -q 'npm test: alone'; then alone+=("$f"); else together+=("$f"); fi
done
reporter=tap; [ -t 1 ] && reporter=spec
code=0
run() { # CONCURRENCY TIMES-FILE FILES...
  local n="$1" times="$2"; shift 2
  [ "$#" -gt 0 ] || return 0
  SYNCLINE_TEST_TIMES="$times" node --import tsx --import ./src/core/kafkajs-patch.ts --test --test-concurrency="$n" --test-force-exit --test-timeout=600000 \
    --test-reporter="$reporter" --test-reporter-destination=stdout \
    --test-reporter=./scripts/test-times.mjs --test-reporter-destination=/dev/null "$@" || code=$?
}
start=$(date +%s)
run "${SYNCLINE_TEST_CONCURRENCY:-2}" reports/test-times.together.txt "${together[@]}"
run 1 reports/test-times.alone.txt "${alone[@]}"
node scripts/test-times.mjs --merge reports/test-times.txt reports/test-times.together.txt reports/test-times.alone.txt "$(( $(date +%s) - start ))" || true
if [ "${#files[@]}" -gt 20 ] && [ -s reports/test-times.txt ]; then
  echo "# slowest test files (all in reports/test-times.txt):"
  head -17 reports/test-times.txt | sed 's/^/#   /'
fi
if [ -s "$SYNCLINE_TEST_FAILURES" ]; then
  echo "# failed tests (reports/test-failures.txt):"
  cut -c1-1200 "$SYNCLINE_TEST_FAILURES" | sed 's/^/#   /'
elif [ "$code" -ne 0 ]; then
  echo "# the test runner exited $code with no test failed (a file that did not load, or a process that ended early): see above"
fi
exit "$code"
