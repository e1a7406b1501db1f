#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster owned by an ordinary user and print
# the environment to reach it.  Usage: source <(tools/throwaway-cluster.sh start DIR PORT [conf-lines...])
#                                      tools/throwaway-cluster.sh stop DIR
# When run as root, the cluster is owned by the user in $CLUSTER_USER
# (default colpali), created if needed, since PostgreSQL refuses root.
set -euo pipefail
PGVER=${PGVER:-15}
BIN=${PGBIN:-/usr/lib/postgresql/$PGVER/bin}
cmd=${1:?start|stop}
if [ "$(id -u)" -eq 0 ]; then
	user=${CLUSTER_USER:-colpali}
else
	user=$(id -un)
fi
dir=${2:?directory}
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$user" -- "$@"
	else
		"$@"
	fi
}
case "$cmd" in
	start)
		port=${3:?port}
		shift 3
		if [ "$(id -u)" -eq 0 ]; then
			id "$user" >/dev/null 2>&1 || useradd -m "$user"
		fi
		mkdir -p "$dir"
		[ "$(id -u)" -eq 0 ] && chown "$user" "$dir"
		as_user "$BIN/initdb" -D "$dir/data" -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
		for line in "$@"; do
			echo "$line" >>"$dir/data/postgresql.conf"
		done
		as_user "$BIN/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=''" -l "$dir/server.log" -w start >/dev/null
		echo "export PGHOST=$dir PGPORT=$port PGUSER=$user PGDATABASE=postgres"
		;;
	stop)
		as_user "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
		;;
esac
