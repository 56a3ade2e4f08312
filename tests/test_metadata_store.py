"""Which ML Metadata store the environment selects (pipeline.metadata_store)."""

import os

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
