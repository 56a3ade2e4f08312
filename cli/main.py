"""``imdb-tfx``: run the pipeline, schedule or compile it, evaluate and explain a pushed
model, serve it with the development server compatible with TF Serving's gRPC API, and
query a server.

The group's callback sets the process environment (``core.environment``) before any
command runs, and so before anything imports TensorFlow.
"""

import click

from cli import analysis, history, report, run, schedule, serving, spans
from core import environment


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
  """IMDB sentiment TFX pipeline: TFDS -> TFDV -> tf.Transform -> attention model ->
  TFMA blessing -> TF Serving model directory."""
  environment.configure()


for command in (
  run.run,
  analysis.evaluate,
  analysis.explain,
  schedule.schedule,
  schedule.compile_group,
  serving.serve,
  serving.predict,
  serving.status,
  spans.spans,
  history.history,
  report.report,
):
  main.add_command(command)


if __name__ == "__main__":
  main()
