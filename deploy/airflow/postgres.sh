#!/usr/bin/env bash
# A PostgreSQL server of the project's own, for Airflow's metadata database and ML Metadata:
# its data, socket and log under DIR, listening on 127.0.0.1:PORT only. Nothing system-wide
# beyond Debian's postgresql package, installed when missing (as root; otherwise the
# message says what to install). Run as root, the server runs as the `postgres` user the
# package creates (PostgreSQL refuses to run as root); otherwise as the calling user.
#
#   postgres.sh start DIR PORT          initdb on first use, then start (waits until ready)
#   postgres.sh stop DIR                stop the server whose pid is in DIR/data (fast mode)
#   postgres.sh status DIR              exit 0 when it runs
#   postgres.sh ensure-db DIR PORT DB USER PASSFILE
#                                       a login role USER owning database DB; USER's
#                                       password is generated once and kept in PASSFILE
#                                       (libpq's format, mode 600), never printed
#   postgres.sh psql DIR PORT [ARGS]    psql as the superuser over the private socket
set -euo pipefail

usage() { sed -n '2,16p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
command=$1
dir=$(realpath -m "$2")
data=$dir/data
socket=$dir/socket
log=$dir/postgres.log

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

ensure_installed() {
  [ -n "$(bin_dir)" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed: sudo apt-get install postgresql" >&2
    exit 1
  fi
  echo "installing Debian's postgresql package ..." >&2
  # Waits for apt's locks when another installer (the page tests' Chromium) holds them.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq postgresql >/dev/null
}

owner() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

superuser_psql() {
  local port=$1
  shift
  as_owner "$(bin_dir)/psql" -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" \
    -U "$(owner)" -d postgres "$@"
}

start() {
  local port=$1
  ensure_installed
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
  as_owner test -w "$dir" || {
    echo "the $(owner) user cannot write $dir: its parent folders must be traversable" \
      "(chmod o+x), or choose another folder" >&2
    exit 1
  }
  if [ ! -f "$data/PG_VERSION" ]; then
    # Local connections (the socket in DIR/socket, mode 700) trust the server's owner only;
    # TCP on 127.0.0.1 needs a password (SCRAM).
    as_owner mkdir -p -m 700 "$socket"
    as_owner "$(bin_dir)/initdb" -D "$data" -U "$(owner)" --auth-local=trust \
      --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >"$dir/initdb.log"
  fi
  if as_owner "$(bin_dir)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    echo "PostgreSQL already running: $data" >&2
    return 0
  fi
  as_owner "$(bin_dir)/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -k $socket -c listen_addresses=127.0.0.1 -c unix_socket_permissions=0700" \
    start >/dev/null || { tail -20 "$log" >&2; exit 1; }
  echo "PostgreSQL on 127.0.0.1:$port (pid $(head -1 "$data/postmaster.pid"), log $log)" >&2
}

stop() {
  [ -f "$data/postmaster.pid" ] || { echo "PostgreSQL not running: $data" >&2; return 0; }
  as_owner "$(bin_dir)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  echo "PostgreSQL stopped: $data" >&2
}

ensure_db() {
  local port=$1 db=$2 user=$3 passfile=$4 password
  [[ $db =~ ^[a-z_][a-z0-9_]*$ && $user =~ ^[a-z_][a-z0-9_]*$ ]] ||
    { echo "database and user names: lower-case letters, digits, _" >&2; exit 2; }
  touch "$passfile"
  chmod 600 "$passfile"
  password=$(awk -F: -v u="$user" -v p="$port" '$2 == p && $4 == u { print $5; exit }' "$passfile")
  if [ -z "$password" ]; then
    password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    echo "127.0.0.1:$port:*:$user:$password" >>"$passfile"
  fi
  # The password goes to psql on stdin, never on a command line (ps would show it).
  superuser_psql "$port" -v user="$user" -v db="$db" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
}

case $command in
start) [ $# -eq 3 ] || usage; start "$3" ;;
stop) stop ;;
status) as_owner "$(bin_dir)/pg_ctl" -D "$data" status >/dev/null 2>&1 ;;
ensure-db) [ $# -eq 6 ] || usage; ensure_db "$3" "$4" "$5" "$6" ;;
psql) [ $# -ge 3 ] || usage; port=$3; shift 3; superuser_psql "$port" "$@" ;;
*) usage ;;
esac
