# A throwaway PostgreSQL for the benchmark scripts, sourced by them:
# `start_postgres DIR` runs Debian's server in DIR/pg on a free loopback
# port with its defaults (fsync and synchronous_commit on), as the postgres
# user when we are root, and sets `pgport`; `stop_postgres DIR` ends it;
# `create_database NAME` prints the URL of a new database in it.

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_postgres() {
    local dir=$1
    chmod 755 "$dir" # the postgres user reaches its directory through it
    mkdir -p "$dir/pg"
    [ "$(id -u)" != 0 ] || chown -R postgres:postgres "$dir/pg"
    pgport=$(free_port)
    as_pg "$pgbin/initdb" -D "$dir/pg/data" -A trust -U postgres >/dev/null
    as_pg "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w \
        -o "-p $pgport -k $dir/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}

stop_postgres() {
    as_pg "$pgbin/pg_ctl" -D "$1/pg/data" -m immediate stop >/dev/null 2>&1 || true
}

create_database() {
    psql -h 127.0.0.1 -p "$pgport" -U postgres -v ON_ERROR_STOP=1 -qAt -c "CREATE DATABASE $1" >/dev/null
    echo "postgresql://postgres@127.0.0.1:$pgport/$1"
}
