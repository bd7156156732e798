#!/usr/bin/env bash
# A private TimescaleDB server for running the suite against it (README "Tests"), where no
# TimescaleDB package can be installed (as on our CI machine): TimescaleDB built from its
# source for this machine's PostgreSQL, installed into a private copy of PostgreSQL's tree
# (the system's tree stays untouched), and one server started on its own port with
# timescaledb preloaded.
#
# Needs: root or a user who may run `pg_config` and compile; the PostgreSQL server headers
# (Debian: postgresql-server-dev-15), cmake, gcc; a TimescaleDB source tree (a clone of
# https://github.com/timescale/timescaledb).
#
#   scripts/timescaledb-server.sh SOURCE_DIR [TAG]        (default TAG: 2.28.3)
#
# Settings (environment):
#   DAON_TSDB_DIR    where the build, the private tree and the data go (default /var/tmp/daon-tsdb)
#   DAON_TSDB_PORT   the server's port (default 5442)
#   PG_CONFIG        which PostgreSQL to build for (default: /usr/lib/postgresql/15/bin/pg_config)
#
# Then: DAON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5442/postgres make test
# Stop: pg_ctl -D "$DAON_TSDB_DIR/data" stop (as the user printed at the end).
set -euo pipefail

main() {
src=${1:?usage: scripts/timescaledb-server.sh SOURCE_DIR [TAG]}
tag=${2:-2.28.3}
dir=${DAON_TSDB_DIR:-/var/tmp/daon-tsdb}
port=${DAON_TSDB_PORT:-5442}
pg_config=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$pg_config" --bindir)
libdir=$("$pg_config" --pkglibdir)
sharedir=$("$pg_config" --sharedir)
# PostgreSQL refuses to run as root: as root the server runs as user postgres
if [ "$(id -u)" = 0 ]; then
    owner=postgres
    run() { su "$owner" -s /bin/bash -c "$(printf '%q ' "$@")"; }
else
    owner=$(id -un)
    run() { "$@"; }
fi

mkdir -p "$dir"
echo "building TimescaleDB $tag from $src for $("$pg_config" --version)"
rm -rf "$dir/src"
git clone -q "$src" "$dir/src"
git -C "$dir/src" checkout -q "$tag"
(cd "$dir/src" && ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
    -DPG_CONFIG="$pg_config" -DCMAKE_BUILD_TYPE=Release >"$dir/bootstrap.log")
make -C "$dir/src/build" -j"$(nproc)" >"$dir/make.log"

# PostgreSQL finds its libraries and extension files relative to its binaries: a copy of its
# tree under $dir/root, with TimescaleDB installed into that copy (DESTDIR), is a server of
# its own that has TimescaleDB while the system's PostgreSQL stays as it was.
root="$dir/root"
mkdir -p "$root$(dirname "$bindir")" "$root$(dirname "$sharedir")"
cp -a "$(dirname "$bindir")/." "$root$(dirname "$bindir")/"
cp -a "$sharedir" "$root$(dirname "$sharedir")/"
make -C "$dir/src/build" install DESTDIR="$root" >"$dir/install.log"
ls "$root$libdir"/timescaledb-"$tag".so >/dev/null

data="$dir/data"
rm -rf "$data"
mkdir -p "$data"
chown -R "$owner" "$dir"
run "$root$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
cat >>"$data/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'timescaledb'
max_connections = 400
timescaledb.telemetry_level = off
# a test server: durability is not the point
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
run "$root$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w start >/dev/null
psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc \
    "CREATE EXTENSION timescaledb; SELECT 'TimescaleDB ' || extversion FROM pg_extension WHERE extname = 'timescaledb'; DROP EXTENSION timescaledb;"
echo "server: postgresql://postgres@127.0.0.1:$port/postgres (log $dir/server.log)"
echo "tests:  DAON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$port/postgres make test"
echo "stop:   (as $owner) $root$bindir/pg_ctl -D $data stop"
}

main "$@"
