# A throwaway PostgreSQL on loopback for the opskit-server tests (sourced by scripts/test).
# Exports OPSKIT_TEST_POSTGRES_URL; each test creates its own database in it.
_pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$_pg_bin" ] && [ "$(id -u)" = 0 ]; then
  apt-get install -y postgresql >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y postgresql >/dev/null; }
  _pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
fi
if [ -z "$_pg_bin" ]; then
  echo "postgres: not installed; PostgreSQL tests will skip (or fail under CI=true)" >&2
else
  _pg_dir="$OPSKIT_TEST_TMP/postgres"
  mkdir -p "$_pg_dir"
  _pg_port=$(free_port)
  _pg_as() { if [ "$(id -u)" = 0 ]; then chown -R postgres "$_pg_dir"; runuser -u postgres -- "$@"; else "$@"; fi; }
  _pg_as "$_pg_bin/initdb" -D "$_pg_dir/data" -A trust -U postgres >/dev/null
  _pg_as "$_pg_bin/pg_ctl" -D "$_pg_dir/data" -l "$_pg_dir/log" -w start \
    -o "-k $_pg_dir -p $_pg_port -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=on" >/dev/null
  _pg_stop() { _pg_as "$_pg_bin/pg_ctl" -D "$_pg_dir/data" -m fast stop >/dev/null 2>&1; }
  on_exit _pg_stop
  export OPSKIT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$_pg_port/postgres"
  echo "postgres: $OPSKIT_TEST_POSTGRES_URL"
fi
