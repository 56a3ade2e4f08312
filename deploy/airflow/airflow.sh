#!/usr/bin/env bash
# The scheduled deployment on one machine (make airflow-up / make airflow-down): a PostgreSQL
# server holding Airflow's metadata database and ML Metadata, Airflow's scheduler with the
# LocalExecutor, and its webserver on 127.0.0.1, running the pipeline's DAG.
#
#   airflow.sh up [OPTIONS of imdb-tfx schedule airflow]   start everything (idempotent)
#   airflow.sh down                                        stop everything up started
#   airflow.sh status                                      what runs, and the DAG's runs
#
# Settings (environment): OUTPUT_DIR (outputs: the pipeline's --output-dir), AIRFLOW_DEPLOY_DIR
# ($OUTPUT_DIR/airflow), AIRFLOW_PG_PORT (54329), AIRFLOW_WEB_PORT (8089; 0: no webserver),
# VENV_BIN (.venv/bin of this checkout), TFDS_DATA_DIR (passed to the scheduled runs).
#
# Everything lives under AIRFLOW_DEPLOY_DIR: postgres/ (data, socket, log), home/
# (AIRFLOW_HOME), dags/, logs/ (scheduler.log, webserver.log, and a folder per task
# attempt), run/ (pid files), env.sh (the settings, no secret: `source` it to use the
# airflow CLI or imdb-tfx history on this deployment), and the secrets, each mode 600:
# pgpass (libpq password file of the two database roles), secret_key, fernet_key and
# admin_password (the webserver's `admin` user). `down` stops the processes by the pid
# files (each started in a session of its own, so the tasks they forked stop too) and the
# database server, and keeps all data. The scheduler runs under `airflow.sh supervise`, which
# starts it again 5 s after it exits (what systemd's Restart=always gives a real deployment):
# Airflow's scheduler exits when its database goes away for a moment.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
output_dir=$(realpath -m "${OUTPUT_DIR:-outputs}")
base=$(realpath -m "${AIRFLOW_DEPLOY_DIR:-$output_dir/airflow}")
pg_port=${AIRFLOW_PG_PORT:-54329}
web_port=${AIRFLOW_WEB_PORT:-8089}
bin=${VENV_BIN:-$repo/.venv/bin}
postgres=$here/postgres.sh
run_dir=$base/run
DAG_ID=imdb_sentiment

log() { echo "airflow.sh: $*" >&2; }
die() { log "$*"; exit 1; }

secret_file() {  # secret_file PATH COMMAND...: the file, created once from COMMAND's output
  local path=$1
  shift
  if [ ! -s "$path" ]; then
    (umask 077 && "$@" >"$path.tmp" && mv "$path.tmp" "$path")
  fi
}

write_env() {
  local tfds=""
  [ -n "${TFDS_DATA_DIR:-}" ] && tfds="export TFDS_DATA_DIR=$(realpath -m "$TFDS_DATA_DIR")"
  cat >"$base/env.sh.tmp" <<EOF
# The scheduled deployment's settings (written by deploy/airflow/airflow.sh up; no secret).
export AIRFLOW_HOME=$base/home
export AIRFLOW__CORE__DAGS_FOLDER=$base/dags
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=300
export AIRFLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT=600
export AIRFLOW__CORE__FERNET_KEY_CMD="cat $base/fernet_key"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow@127.0.0.1:$pg_port/airflow
export AIRFLOW__LOGGING__BASE_LOG_FOLDER=$base/logs
export AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL=30
export AIRFLOW__WEBSERVER__WEB_SERVER_HOST=127.0.0.1
export AIRFLOW__WEBSERVER__WEB_SERVER_PORT=$web_port
export AIRFLOW__WEBSERVER__SECRET_KEY_CMD="cat $base/secret_key"
export AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth
# Both Airflow (libpq, through psycopg2) and ML Metadata read the passwords from this file.
export PGPASSFILE=$base/pgpass
export IMDB_TFX_MLMD_POSTGRES_HOST=127.0.0.1
export IMDB_TFX_MLMD_POSTGRES_PORT=$pg_port
export IMDB_TFX_MLMD_POSTGRES_DATABASE=imdb_tfx_mlmd
export IMDB_TFX_MLMD_POSTGRES_USER=imdb_tfx
export IMDB_TFX_MLMD_POSTGRES_PASSFILE=$base/pgpass
export TF_USE_LEGACY_KERAS=1
export PATH=$bin:\$PATH
$tfds
EOF
  mv "$base/env.sh.tmp" "$base/env.sh"
}

alive() { [ -f "$run_dir/$1.pid" ] && kill -0 "$(cat "$run_dir/$1.pid")" 2>/dev/null; }

supervise() {  # supervise NAME COMMAND...: COMMAND, and again 5 s after each time it exits
  local name=$1 status
  shift
  while true; do
    "$@" && status=0 || status=$?
    echo "$(date -u +%FT%TZ) airflow.sh: $name exited with status $status; starting it again in 5 s" >&2
    sleep 5
  done
}

start_process() {  # start_process NAME COMMAND...: in a session of its own, logging to logs/
  local name=$1
  shift
  if alive "$name"; then
    log "$name already running (pid $(cat "$run_dir/$name.pid"))"
    return 0
  fi
  setsid "$@" >>"$base/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run_dir/$name.pid"
  log "$name started (pid $!, log $base/logs/$name.log)"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq "$seconds"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "$what not ready after $seconds s"
}

up() {
  [ -x "$bin/airflow" ] || die "no Airflow in $bin: run make venv"
  mkdir -p "$base"/{home,dags,logs,run}
  "$postgres" start "$base/postgres" "$pg_port"
  "$postgres" ensure-db "$base/postgres" "$pg_port" airflow airflow "$base/pgpass"
  "$postgres" ensure-db "$base/postgres" "$pg_port" imdb_tfx_mlmd imdb_tfx "$base/pgpass"
  secret_file "$base/secret_key" "$bin/python" -c "import secrets; print(secrets.token_hex(32))"
  secret_file "$base/fernet_key" "$bin/python" -c \
    "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
  write_env
  # shellcheck source=/dev/null
  source "$base/env.sh"
  # The migration and the DAG file's rendering (which compiles the pipeline) are
  # independent: they run side by side.
  log "airflow db migrate ..."
  airflow db migrate >>"$base/logs/migrate.log" 2>&1 &
  local migrate=$!
  "$bin/imdb-tfx" schedule airflow --output "$base/dags/$DAG_ID.py" --output-dir "$output_dir" "$@" ||
    { wait "$migrate" || true; die "imdb-tfx schedule airflow failed (above)"; }
  wait "$migrate" || die "airflow db migrate failed: $base/logs/migrate.log"
  # The scheduler with TFX imported, for the tasks it forks (deploy/airflow/scheduler.py),
  # started again whenever it exits.
  start_process scheduler bash "$here/airflow.sh" supervise scheduler "$bin/python" "$here/scheduler.py"
  wait_for "the scheduler" 180 airflow jobs check --job-type SchedulerJob --local
  wait_for_dag 600
  if [ "$web_port" != 0 ]; then
    create_admin
    start_process webserver airflow webserver
    wait_for "the webserver (http://127.0.0.1:$web_port)" 240 \
      "$bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$web_port/health', timeout=5)"
    log "webserver: http://127.0.0.1:$web_port (user admin, password in $base/admin_password)"
  fi
  log "up: source $base/env.sh to use the airflow CLI; airflow.sh down stops everything"
}

wait_for_dag() {  # wait_for_dag SECONDS: until the scheduler has parsed the DAG file
  local deadline=$((SECONDS + $1)) errors
  while [ $SECONDS -lt $deadline ]; do
    # grep without -q: under pipefail, its early exit could fail the pipeline (SIGPIPE).
    airflow dags list -o plain 2>/dev/null | grep -w "$DAG_ID" >/dev/null && {
      log "DAG $DAG_ID parsed"
      return 0
    }
    errors=$(airflow dags list-import-errors -o plain 2>/dev/null | grep -F "$base/dags/" || true)
    [ -z "$errors" ] || die "the DAG file does not import: $errors"
    sleep 5
  done
  die "the scheduler has not parsed $base/dags/$DAG_ID.py after $1 s: $base/home/logs/scheduler/"
}

create_admin() {
  secret_file "$base/admin_password" "$bin/python" -c "import secrets; print(secrets.token_urlsafe(18))"
  # What `airflow users create` does, with the password read from its file (mode 600):
  # never on a command line, where ps would show it.
  "$bin/python" - "$base/admin_password" >>"$base/logs/migrate.log" 2>&1 <<'PY' ||
import sys
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

password = open(sys.argv[1], encoding="utf-8").read().strip()
with get_application_builder() as appbuilder:
    sm = appbuilder.sm
    if not sm.find_user("admin"):
        if not sm.add_user("admin", "imdb-tfx", "admin", "admin@localhost", sm.find_role("Admin"), password):
            sys.exit("could not create the admin user")
PY
    die "creating the webserver's admin user failed: $base/logs/migrate.log"
}

stop_process() {  # stop_process NAME: TERM to its session, KILL after 60 s
  local name=$1 pid
  [ -f "$run_dir/$name.pid" ] || return 0
  pid=$(cat "$run_dir/$name.pid")
  if pkill -TERM -s "$pid" 2>/dev/null; then
    for _ in $(seq 60); do
      pgrep -s "$pid" >/dev/null || break
      sleep 1
    done
    pkill -KILL -s "$pid" 2>/dev/null || true
    log "$name stopped (session $pid)"
  fi
  rm -f "$run_dir/$name.pid"
}

down() {
  stop_process webserver
  stop_process scheduler
  "$postgres" stop "$base/postgres"
}

status() {
  local name
  for name in scheduler webserver; do
    if alive "$name"; then echo "$name: running (pid $(cat "$run_dir/$name.pid"))"; else echo "$name: stopped"; fi
  done
  if "$postgres" status "$base/postgres"; then
    echo "postgres: running (127.0.0.1:$pg_port)"
    # shellcheck source=/dev/null
    source "$base/env.sh"
    airflow dags list-runs -d "$DAG_ID" 2>/dev/null || true
  else
    echo "postgres: stopped"
  fi
}

command=${1:-}
[ $# -gt 0 ] && shift
case $command in
up) up "$@" ;;
down) down ;;
status) status ;;
supervise) supervise "$@" ;;
*) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
