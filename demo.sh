#!/usr/bin/env bash
# colpali end to end on a fresh machine: install dependencies, build,
# install, start a throwaway cluster, create the extension, load sample
# data, rank it with <#> and print the result.
#
#   ./demo.sh
set -euo pipefail
cd "$(dirname "$0")"
PGVER=${PGVER:-15}
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PGVER/bin/pg_config}
# the cluster runs the binaries of the installation the extension goes into
export PGBIN=${PGBIN:-$("$PG_CONFIG" --bindir)}
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo

tools/install-deps.sh
make -j2 PG_CONFIG="$PG_CONFIG" >/dev/null
$SUDO make install PG_CONFIG="$PG_CONFIG" >/dev/null

work=$(mktemp -d /tmp/colpali-demo.XXXXXX)
chmod 755 "$work"
eval "$(tools/throwaway-cluster.sh start "$work/cluster" 5479)"
trap 'tools/throwaway-cluster.sh stop "$work/cluster"; rm -rf "$work"' EXIT

# The encoder part uses the demo model trained on synthetic pages and its
# held-out pages (test/fixtures/train_demo.py), copied where the cluster's
# user can read them.
mkdir -p "$work/data"
cp -r test/fixtures/models/demo "$work/data/model"
cp -r test/fixtures/demo/pages test/fixtures/demo/*.tsv "$work/data/"
chmod -R a+rX "$work/data"

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -v "data=$work/data" -v "model=$work/data/model")
[ "$(id -u)" -eq 0 ] && PSQL=(runuser -u "${CLUSTER_USER:-colpali}" -- "${PSQL[@]}")
"${PSQL[@]}" -f docs/demo.sql
