#!/usr/bin/env bash
# Overhead of the colpali background worker on the CPU backend: the same
# calls in process (colpali.use_worker = off) and through the worker, side by
# side in one throwaway cluster, with pgbench.
#
#   [BENCH_THREADS=N] [OMP_WAIT_POLICY=passive] bench/worker/run.sh [MODEL_DIR] [SECONDS]
#
# Needs the PostgreSQL binaries (initdb, pg_ctl, psql, pgbench) of the
# installation colpali is installed into first in PATH, and must run as an
# ordinary user (PostgreSQL refuses root).  MODEL_DIR defaults to the tiny
# fixture checkpoint (random weights: it measures the machinery, not ColPali).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
model=${1:-$root/test/fixtures/models/tiny}
secs=${2:-10}
image=$root/test/fixtures/images/page_text.png
port=${BENCH_PORT:-5599}
tmp=$(mktemp -d)
trap 'pg_ctl -D "$tmp/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

initdb -D "$tmp/data" -A trust -U postgres >/dev/null
cat >> "$tmp/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$tmp'
shared_preload_libraries = 'colpali'
colpali.model_path = '$model'
colpali.threads = ${BENCH_THREADS:-1}
colpali.max_batch = 16
colpali.max_wait_ms = 2
max_connections = 40
CONF
pg_ctl -D "$tmp/data" -l "$tmp/log" -w start >/dev/null
export PGHOST=$tmp PGPORT=$port PGUSER=postgres PGDATABASE=postgres

psql -qX -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION colpali;
CREATE TABLE img AS SELECT pg_read_binary_file('$image') AS data;
SQL
echo "SELECT dims(colpali_query('What is the total revenue in 2024?'));" > "$tmp/query.sql"
echo "SELECT dims(colpali_image(data)) FROM img;" > "$tmp/image.sql"

# pgbench MODE SCRIPT CLIENTS -> "tps latency_ms"
run() {
	local opt=""
	[ "$1" = in-process ] && opt="-c colpali.use_worker=off"
	# warm-up: load the model in every connection / in the worker
	PGOPTIONS="$opt" pgbench -n -c "$3" -j "$3" -T 2 -f "$tmp/$2.sql" >/dev/null
	PGOPTIONS="$opt" pgbench -n -c "$3" -j "$3" -T "$secs" -f "$tmp/$2.sql" |
		awk '/^latency average/ {lat=$4} /^tps/ {tps=$3} END {printf "%.1f %.2f\n", tps, lat}'
}

echo "# colpali worker overhead, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; model: $model; colpali.threads = ${BENCH_THREADS:-1}, OMP_WAIT_POLICY = ${OMP_WAIT_POLICY:-unset}"
printf '%-8s %-8s %-11s %10s %12s\n' call clients path calls/s latency_ms
for call in query image; do
	for clients in 1 16; do
		for mode in in-process worker; do
			read -r tps lat < <(run $mode $call $clients)
			printf '%-8s %-8s %-11s %10s %12s\n' "$call" "$clients" "$mode" "$tps" "$lat"
			eval "r_${call}_${clients}_${mode//-/_}=\"$tps $lat\""
		done
	done
done
psql -qXAt -c "SELECT format('# worker: %s requests in %s batches, largest batch %s, mean latency %s ms, p99 %s ms',
	requests, batches, max_batch_items, round(mean_latency_ms::numeric, 2), round(p99_latency_ms::numeric, 2))
	FROM colpali_stats()"

# ratios worker / in-process
for call in query image; do
	for clients in 1 16; do
		eval "a=(\$r_${call}_${clients}_in_process)"; eval "b=(\$r_${call}_${clients}_worker)"
		awk -v c=$call -v n=$clients -v ta="${a[0]}" -v la="${a[1]}" -v tb="${b[0]}" -v lb="${b[1]}" \
			'BEGIN { printf "# %s, %s clients: worker/in-process throughput %.2fx, latency +%.2f ms\n", c, n, tb/ta, lb-la }'
	done
done
