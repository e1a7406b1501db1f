#!/usr/bin/env bash
# Make a private, relocated copy of the Debian PostgreSQL 15 installation
# under $1 (developer convenience: lets several people `make install` and
# test different builds of the extension at once on one machine).
# Usage: tools/private-pg.sh /opt/pg-NAME ; then use
#   make PG_CONFIG=/opt/pg-NAME/usr/lib/postgresql/15/bin/pg_config install
#   export PATH=/opt/pg-NAME/usr/lib/postgresql/15/bin:$PATH
set -euo pipefail
dest=${1:?destination}
ver=${PGVER:-15}
mkdir -p "$dest/usr/lib/postgresql" "$dest/usr/share/postgresql" "$dest/usr/include"
cp -a /usr/lib/postgresql/$ver "$dest/usr/lib/postgresql/"
cp -a /usr/share/postgresql/$ver "$dest/usr/share/postgresql/"
cp -a /usr/include/postgresql "$dest/usr/include/"
chmod -R a+rX "$dest"
echo "$dest/usr/lib/postgresql/$ver/bin/pg_config"
