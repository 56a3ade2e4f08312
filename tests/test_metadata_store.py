"""Which ML Metadata store the environment selects (pipeline.metadata_store)."""

import os
import secrets

import pytest

from pipeline import metadata_store
from pipeline.layout import OutputPaths

PG = metadata_store.POSTGRES_ENV_PREFIX


def test_sqlite_in_the_output_dir_by_default(tmp_path):
  config = metadata_store.connection_config(str(tmp_path), {})
  assert config.sqlite.filename_uri == OutputPaths(str(tmp_path)).metadata_path
  assert metadata_store.describe(config) == OutputPaths(str(tmp_path)).metadata_path


def test_postgres_from_the_environment_with_a_private_password_file(tmp_path):
  passfile = tmp_path / "pgpass"
  passfile.write_text("127.0.0.1:5433:*:tfx:s3cret\n")
  passfile.chmod(0o600)
  env = {PG + "HOST": "127.0.0.1", PG + "PORT": "5433", PG + "USER": "tfx"}
  env[PG + "PASSFILE"] = str(passfile)
  config = metadata_store.connection_config(str(tmp_path), env)
  pg = config.postgresql
  assert (pg.host, pg.port, pg.user, pg.dbname, pg.passfile, pg.password) == (
    "127.0.0.1",
    "5433",
    "tfx",
    "imdb_tfx_mlmd",
    str(passfile),
    "",
  )
  assert metadata_store.describe(config) == "postgresql://tfx@127.0.0.1:5433/imdb_tfx_mlmd"
  passfile.chmod(0o644)
  with pytest.raises(ValueError, match="chmod 600") as raised:
    metadata_store.connection_config(str(tmp_path), env)
  assert "s3cret" not in str(raised.value)
  os.remove(passfile)
  with pytest.raises(ValueError, match="no such file"):
    metadata_store.connection_config(str(tmp_path), env)


def test_password_from_the_environment_is_never_in_messages(tmp_path):
  env = {PG + "HOST": "db", PG + "USER": "tfx", PG + "PASSWORD": "s3cret"}
  config = metadata_store.connection_config(str(tmp_path), env)
  assert (config.postgresql.port, config.postgresql.password) == ("5432", "s3cret")
  assert "s3cret" not in metadata_store.describe(config)
  with pytest.raises(ValueError, match=f"{PG}USER") as raised:
    metadata_store.connection_config(str(tmp_path), {PG + "HOST": "db", PG + "PASSWORD": "s3cret"})
  assert "s3cret" not in str(raised.value)
  with pytest.raises(ValueError, match=f"{PG}PORT"):
    metadata_store.connection_config(str(tmp_path), {**env, PG + "PORT": "54x"})


def test_one_server_at_a_time(tmp_path):
  env = {PG + "HOST": "a", PG + "USER": "u", "IMDB_TFX_MLMD_MYSQL_HOST": "b"}
  with pytest.raises(ValueError, match="choose one"):
    metadata_store.connection_config(str(tmp_path), env)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
  """A PostgreSQL server started by deploy/airflow/postgres.sh (installed when missing),
  with the ML Metadata database and role; yields (port, passfile)."""
  import shutil
  import socket
  import subprocess
  import tempfile

  script = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "deploy", "airflow", "postgres.sh"
  )
  # Run as root, the server runs as `postgres`, who cannot enter pytest's tmp_path.
  base = tempfile.mkdtemp(prefix="imdb-tfx-pg-")
  os.chmod(base, 0o755)
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
  passfile = os.path.join(base, "pgpass")
  try:
    for args in (
      ["start", base, port],
      ["ensure-db", base, port, "imdb_tfx_mlmd", "imdb_tfx", passfile],
    ):
      done = subprocess.run(["bash", script, *args], capture_output=True, text=True, timeout=600)
      assert done.returncode == 0, done.stderr
    yield port, passfile
  finally:
    subprocess.run(["bash", script, "stop", base], capture_output=True, timeout=120)
    shutil.rmtree(base, ignore_errors=True)


def _env(port, passfile, **overrides):
  env = {
    PG + "HOST": "127.0.0.1",
    PG + "PORT": port,
    PG + "USER": "imdb_tfx",
    PG + "PASSFILE": passfile,
  }
  return {**env, **overrides}


@pytest.mark.e2e
def test_ml_metadata_on_postgres_and_clear_connection_errors(postgres, tmp_path):
  from ml_metadata import metadata_store as mlmd
  from ml_metadata.proto import metadata_store_pb2

  port, passfile = postgres
  config = metadata_store.connection_config(str(tmp_path), _env(port, passfile))
  metadata_store.check_connection(config)
  store = mlmd.MetadataStore(config)  # creates its tables in the empty database
  type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
  assert store.get_artifact_type("Examples").id == type_id

  wrong = tmp_path / "wrong"
  wrong.write_text(f"127.0.0.1:{port}:*:imdb_tfx:not-the-password\n")
  wrong.chmod(0o600)
  bad = metadata_store.connection_config(str(tmp_path), _env(port, str(wrong)))
  with pytest.raises(ConnectionError, match="password authentication failed") as refused:
    metadata_store.check_connection(bad)
  assert f"postgresql://imdb_tfx@127.0.0.1:{port}/imdb_tfx_mlmd" in str(refused.value)
  assert "not-the-password" not in str(refused.value)
  closed = _closed_port()
  unreachable = metadata_store.connection_config(str(tmp_path), _env(closed, passfile))
  with pytest.raises(ConnectionError, match=f"127.0.0.1:{closed}.*(refused|could not connect)"):
    metadata_store.check_connection(unreachable)


@pytest.mark.e2e
def test_cli_names_the_store_it_cannot_open_and_writes_nothing(postgres, tmp_path, monkeypatch):
  from click.testing import CliRunner

  from cli import main as cli

  port, _ = postgres
  wrong = tmp_path / "wrong"
  wrong.write_text(f"127.0.0.1:{port}:*:imdb_tfx:not-the-password\n")
  wrong.chmod(0o600)
  for key, value in _env(port, str(wrong)).items():
    monkeypatch.setenv(key, value)
  out = tmp_path / "out"
  for args in (["history"], ["run", "--train-split", "train[:1%]", "--no-report"]):
    result = CliRunner().invoke(cli.main, [*args, "--output-dir", str(out)])
    assert result.exit_code == 1, result.output
    assert "cannot open ML Metadata at postgresql://imdb_tfx@" in result.output
    assert "password authentication failed" in result.output
    assert not out.exists()  # nothing written


def _closed_port() -> str:
  """A local port nothing listens on (bound, then closed)."""
  import socket

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return str(s.getsockname()[1])


@pytest.mark.e2e
def test_long_property_strings_fit_ml_metadata_on_postgres(postgres, tmp_path):
  """ml-metadata's btree index on property strings refuses values over 2704 bytes (a
  component's configuration, for one) until check_connection indexes their hash."""
  from ml_metadata import metadata_store as mlmd
  from ml_metadata.proto import metadata_store_pb2

  port, passfile = postgres
  config = metadata_store.connection_config(str(tmp_path), _env(port, passfile))
  metadata_store.check_connection(config)
  metadata_store.check_connection(config)  # again: nothing left to change
  store = mlmd.MetadataStore(config)
  type_id = store.put_execution_type(
    metadata_store_pb2.ExecutionType(
      name="LongConfig", properties={"config": metadata_store_pb2.STRING}
    )
  )
  execution = metadata_store_pb2.Execution(type_id=type_id)
  long_value = secrets.token_hex(5_000)  # random: PostgreSQL cannot compress it small
  execution.properties["config"].string_value = long_value
  [execution_id] = store.put_executions([execution])
  [back] = store.get_executions_by_id([execution_id])
  assert back.properties["config"].string_value == long_value


@pytest.mark.e2e
def test_a_failed_execution_is_recorded_on_postgres(postgres, tmp_path):
  """ml-metadata cannot write a string with a backslash to PostgreSQL; TFX's record of a
  failure (its ExecutionResult as JSON) has them, unless tfx_fixes rewrites it."""
  from ml_metadata import errors
  from ml_metadata import metadata_store as mlmd
  from ml_metadata.proto import metadata_store_pb2
  from tfx.orchestration.portable.mlmd import execution_lib
  from tfx.proto.orchestration import execution_result_pb2

  from pipeline import tfx_fixes

  port, passfile = postgres
  config = metadata_store.connection_config(str(tmp_path), _env(port, passfile))
  metadata_store.check_connection(config)
  store = mlmd.MetadataStore(config)
  type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Gate"))
  result = execution_result_pb2.ExecutionResult(
    code=2, result_message='drift in 1 feature:\n  "label" 0.39 > 0.1'
  )

  def failed():
    execution = metadata_store_pb2.Execution(
      type_id=type_id, last_known_state=metadata_store_pb2.Execution.FAILED
    )
    execution_lib.set_execution_result(result, execution)
    return execution

  with pytest.raises(errors.InternalError, match="syntax error"):
    store.put_executions([failed()])  # TFX's own JSON
  with tfx_fixes.workarounds():
    [execution_id] = store.put_executions([failed()])
  [back] = store.get_executions_by_id([execution_id])
  assert back.last_known_state == metadata_store_pb2.Execution.FAILED
  assert "drift in 1 feature" in back.custom_properties["__execution_result__"].string_value
