"""The report step of a scheduled run: one Airflow task after every TFX task of the DAG,
writing that DAG run's report (``OUTPUT_DIR/reports/<run id>/index.html``) and the
history page, as ``imdb-tfx run`` does after its run.

It runs whatever the pipeline's tasks did (``trigger_rule="all_done"``), so a run stopped
by drift or a failed component gets its report too; it then fails itself when a pipeline
task failed, naming it, so the DAG run's state stays the pipeline's (Airflow decides a
DAG run's state from its last tasks, and this is the last).
"""

import os

from pipeline.layout import PIPELINE_NAME, OutputPaths

REPORT_TASK_ID = "report"


def add_report_task(dag, output_dir: str):
  """Adds the report task downstream of every task of ``dag`` that has none; returns it.

  Args:
    dag: the ``airflow.models.DAG`` of ``pipeline.airflow_dag.build_dag``.
    output_dir: its ``output_dir`` (ML Metadata is found as the DAG's tasks find it, from
      the worker's environment).
  """
  from airflow.operators.python import PythonOperator
  from airflow.utils.trigger_rule import TriggerRule

  leaves = [task for task in dag.tasks if not task.downstream_list]
  report = PythonOperator(
    task_id=REPORT_TASK_ID,
    python_callable=write_scheduled_report,
    op_kwargs={"output_dir": output_dir},
    trigger_rule=TriggerRule.ALL_DONE,
    retries=0,
    dag=dag,
  )
  for leaf in leaves:
    leaf >> report
  return report


def write_scheduled_report(output_dir: str, dag_run=None, **_) -> str | None:
  """Writes the report of ``dag_run`` (Airflow passes it) and returns its path (None when
  the run recorded nothing in ML Metadata), then releases the DAG run's lease on the
  output directory (``pipeline.airflow_dag.add_claim_task``) whatever happened.

  Raises:
    airflow.exceptions.AirflowFailException: a task of the pipeline failed (after the
      report is written).
  """
  from pipeline import run_lock
  from pipeline.airflow_dag import lease_command

  paths = OutputPaths(os.path.abspath(output_dir))
  try:
    return _report(paths, dag_run)
  finally:  # the DAG run is over: the next run, scheduled or by hand, may start
    run_lock.release_lease(paths.output_dir, lease_command(dag_run))


def _report(paths: OutputPaths, dag_run) -> str | None:
  from airflow.exceptions import AirflowFailException
  from airflow.utils.state import TaskInstanceState

  from analysis.report import page
  from pipeline import metadata_store

  path = None
  try:
    path = page.write_run_report(
      metadata_store.connection_config(paths.output_dir),
      PIPELINE_NAME,
      dag_run.run_id,
      paths.reports_dir,
    )
    print(f"Report: {path}")
  except ValueError as e:  # the run failed before any component was recorded
    print(f"No report: {e}")
  failed = [
    ti.task_id
    for ti in dag_run.get_task_instances(
      state=[TaskInstanceState.FAILED, TaskInstanceState.UPSTREAM_FAILED]
    )
    if ti.task_id != REPORT_TASK_ID
  ]
  if failed:
    where = f"; its report: {path}" if path else ""
    raise AirflowFailException(f"the pipeline run failed at {', '.join(sorted(failed))}{where}")
  return path
