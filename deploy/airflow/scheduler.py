"""``airflow scheduler`` with TFX and TensorFlow imported first (what ``airflow.sh up`` starts).

The LocalExecutor runs each task in a process forked from the scheduler, and every task of
the DAG imports TFX and TensorFlow (``pipeline.airflow_dag.launch_node``): about 10 s of CPU
on 2 cores, most of a cached task's time. Imported here, before the scheduler starts its
executor, they come with every fork. Nothing else differs from ``airflow scheduler ARGS``.

Only the modules are imported: no TensorFlow runtime, thread pool or gRPC channel exists
before a fork (those would not survive one).
"""

import sys


def main() -> None:
  """Imports the DAG tasks' modules, then runs Airflow's CLI as ``airflow scheduler ARGS``."""
  from core import environment

  environment.configure()  # Keras 2 for tf.Transform: before TensorFlow is imported
  from airflow.__main__ import main as airflow_main
  from tfx.dsl.compiler import compiler  # noqa: F401
  from tfx.orchestration.portable import launcher  # noqa: F401

  import pipeline.pipeline  # noqa: F401 (TFX, TensorFlow and the components)

  sys.argv = ["airflow", "scheduler", *sys.argv[1:]]
  airflow_main()


if __name__ == "__main__":
  main()
