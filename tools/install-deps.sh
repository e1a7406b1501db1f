#!/usr/bin/env bash
# Install the Debian packages colpali needs to build, test and run its demo.
# Needs root (or sudo).  Safe to run repeatedly.
set -euo pipefail
PGVER=${PGVER:-15}
pkgs=(
	make gcc clang libclang-rt-14-dev
	"postgresql-$PGVER" "postgresql-server-dev-$PGVER" postgresql-contrib
	libopenblas-dev libstb-dev libjansson-dev libjpeg-dev
	libpcre2-dev libutf8proc-dev
	libipc-run-perl
	python3-numpy python3-threadpoolctl python3-psycopg python3-pytest python3-venv
	poppler-utils python3-pil
)
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
