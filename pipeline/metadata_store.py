"""Which ML Metadata store a run, a scheduled run, ``imdb-tfx history`` and ``imdb-tfx
report`` use: one function, read from the environment, so all of them see the same store.

* SQLite in ``<output_dir>/metadata.sqlite`` (the default: one machine, one run at a time,
  ``pipeline.run_lock``);
* PostgreSQL when ``IMDB_TFX_MLMD_POSTGRES_HOST`` is set (the scheduled deployment,
  ``deploy/airflow/``): ``_PORT`` (5432), ``_DATABASE`` (``imdb_tfx_mlmd``), ``_USER``, and
  the password from a libpq password file, ``_PASSFILE`` (``host:port:db:user:password``
  lines, readable by its owner only; PostgreSQL's own format and rule), or ``_PASSWORD``;
* MySQL when ``IMDB_TFX_MLMD_MYSQL_HOST`` is set, with the same scheme (``_PORT`` 3306,
  ``_DATABASE``, ``_USER``, ``_PASSWORD``).

The configs are built here from ml-metadata's proto rather than with TFX's
``tfx.orchestration.metadata.*_metadata_connection_config``: those import TFX (seconds,
before a CLI command has even checked its options) and the SQLite one creates the
folder it names, which ``imdb-tfx history`` on a mistyped directory must not do.

ml-metadata 1.16 creates its tables in an empty database on first connection. Credentials
are read where the store is opened (the Airflow worker, the CLI), never written into a
DAG file, a log line or an error message (messages name the variable, never its value).
"""

import os
import stat
from collections.abc import Mapping

from ml_metadata.proto import metadata_store_pb2

from pipeline.layout import OutputPaths

POSTGRES_ENV_PREFIX = "IMDB_TFX_MLMD_POSTGRES_"
MYSQL_ENV_PREFIX = "IMDB_TFX_MLMD_MYSQL_"
DEFAULT_DATABASE = "imdb_tfx_mlmd"


def connection_config(
  output_dir: str, environ: Mapping[str, str] = os.environ
) -> metadata_store_pb2.ConnectionConfig:
  """The MLMD connection: PostgreSQL or MySQL when the environment names a host (see the
  module docstring), else SQLite in ``<output_dir>/metadata.sqlite``.

  Raises:
    ValueError: both servers are named; the user is missing; the port is not a number;
      the password file is missing or readable by others than its owner.
  """
  postgres, mysql = (
    environ.get(POSTGRES_ENV_PREFIX + "HOST"),
    environ.get(MYSQL_ENV_PREFIX + "HOST"),
  )
  if postgres and mysql:
    raise ValueError(
      f"both {POSTGRES_ENV_PREFIX}HOST and {MYSQL_ENV_PREFIX}HOST are set: choose one store"
    )
  if postgres:
    return _postgres(environ)
  if mysql:
    return _mysql(environ)
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = OutputPaths(output_dir).metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
  return config


def describe(config: metadata_store_pb2.ConnectionConfig) -> str:
  """Where the store is, for messages: the SQLite file or ``postgresql://user@host:port/db``
  (never a password)."""
  kind = config.WhichOneof("config")
  if kind == "sqlite":
    return config.sqlite.filename_uri
  if kind == "postgresql":
    c = config.postgresql
    return f"postgresql://{c.user}@{c.host}:{c.port}/{c.dbname}"
  if kind == "mysql":
    c = config.mysql
    return f"mysql://{c.user}@{c.host}:{c.port}/{c.database}"
  return kind or "no store"


# ml-metadata 1.16's PostgreSQL schema indexes each property's string value with a
# btree, whose entries PostgreSQL limits to 2704 bytes; a longer value (a component's
# configuration, e.g. DistributionValidator's ``config``) then fails the whole execution
# ("index row size ... exceeds btree version 4 maximum 2704"). These indexes get the
# value's md5 instead (PostgreSQL's own hint); ML Metadata's results do not change.
_STRING_VALUE_INDEXES = (
  "idx_artifact_property_string",
  "idx_execution_property_string",
  "idx_context_property_string",
)


def check_connection(
  config: metadata_store_pb2.ConnectionConfig, timeout_seconds: int = 10
) -> None:
  """Connects to a PostgreSQL store once, as ML Metadata will, to fail early and clearly:
  ml-metadata reports every failed PostgreSQL connection as ``connection pointer is
  NULL``, while libpq (here through psycopg2) says what went wrong (``password
  authentication failed for user ...``, ``Connection refused``). Then makes sure ML
  Metadata's schema exists and indexes long string values by their hash
  (``_STRING_VALUE_INDEXES``). SQLite and MySQL stores are not checked.

  Raises:
    ConnectionError: the server cannot be reached or refuses the credentials; the
      message names the store (``describe``) and libpq's reason, never a password.
  """
  if config.WhichOneof("config") != "postgresql":
    return
  import psycopg2

  pg = config.postgresql
  params = {"host": pg.host, "port": pg.port, "dbname": pg.dbname, "user": pg.user}
  if pg.passfile:
    params["passfile"] = pg.passfile
  if pg.password:
    params["password"] = pg.password
  try:
    connection = psycopg2.connect(connect_timeout=timeout_seconds, **params)
  except psycopg2.OperationalError as e:
    reason = " ".join(str(e).split())
    raise ConnectionError(f"cannot open ML Metadata at {describe(config)}: {reason}") from None
  try:
    from ml_metadata import metadata_store as mlmd

    mlmd.MetadataStore(config)  # creates the schema in an empty database
    _index_string_values_by_hash(connection)
  finally:
    connection.close()


def _index_string_values_by_hash(connection) -> None:
  """Rebuilds each of ``_STRING_VALUE_INDEXES`` on ``md5(string_value)`` unless it already
  is; one transaction, so a concurrent caller waits and finds the work done."""
  with connection, connection.cursor() as cursor:
    cursor.execute(
      "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
      (list(_STRING_VALUE_INDEXES),),
    )
    for name, definition in cursor.fetchall():
      if "md5(string_value)" in definition:
        continue
      cursor.execute(f"DROP INDEX IF EXISTS {name}")
      cursor.execute(definition.replace("string_value)", "md5(string_value))"))


def _user_and_port(environ: Mapping[str, str], prefix: str, default_port: int) -> tuple[str, int]:
  user = environ.get(prefix + "USER")
  if not user:
    raise ValueError(f"{prefix}HOST is set but {prefix}USER is not")
  port = environ.get(prefix + "PORT", str(default_port))
  if not port.isdigit():
    raise ValueError(f"{prefix}PORT must be a number")
  return user, int(port)


def _postgres(environ: Mapping[str, str]) -> metadata_store_pb2.ConnectionConfig:
  user, port = _user_and_port(environ, POSTGRES_ENV_PREFIX, 5432)
  config = metadata_store_pb2.ConnectionConfig()
  pg = config.postgresql
  pg.host = environ[POSTGRES_ENV_PREFIX + "HOST"]
  pg.port = str(port)
  pg.dbname = environ.get(POSTGRES_ENV_PREFIX + "DATABASE", DEFAULT_DATABASE)
  pg.user = user
  passfile = environ.get(POSTGRES_ENV_PREFIX + "PASSFILE")
  if passfile:
    _check_private(passfile, POSTGRES_ENV_PREFIX + "PASSFILE")
    pg.passfile = os.path.abspath(passfile)
  elif environ.get(POSTGRES_ENV_PREFIX + "PASSWORD"):
    pg.password = environ[POSTGRES_ENV_PREFIX + "PASSWORD"]
  return config


def _mysql(environ: Mapping[str, str]) -> metadata_store_pb2.ConnectionConfig:
  user, port = _user_and_port(environ, MYSQL_ENV_PREFIX, 3306)
  config = metadata_store_pb2.ConnectionConfig()
  config.mysql.host = environ[MYSQL_ENV_PREFIX + "HOST"]
  config.mysql.port = port
  config.mysql.database = environ.get(MYSQL_ENV_PREFIX + "DATABASE", DEFAULT_DATABASE)
  config.mysql.user = user
  config.mysql.password = environ.get(MYSQL_ENV_PREFIX + "PASSWORD", "")
  return config


def _check_private(path: str, variable: str) -> None:
  """libpq ignores a password file that group or others can read (and then fails with a
  password error that does not say why); this says why, up front."""
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    raise ValueError(f"{variable}: no such file {path}") from None
  if mode & (stat.S_IRWXG | stat.S_IRWXO):
    raise ValueError(
      f"{variable}: {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
      f"run chmod 600 {path}"
    )
