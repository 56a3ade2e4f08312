"""Installs the IMDB TFX pipeline: its packages (layered as the README shows) and `imdb-tfx`."""

from setuptools import setup

setup(
  name="imdb-tfx",
  version="0.1.0",
  description="Reference TFX pipeline for attention-based IMDB sentiment classifiers",
  python_requires=">=3.10,<3.11",
  packages=[
    "cli",
    "analysis",
    "analysis.report",
    "pipeline",
    "components",
    "models",
    "serving",
    "behaviour",
    "core",
  ],
  package_data={"pipeline": ["schema/*.pbtxt"]},
  install_requires=[
    "tfx==1.16.0",
    "tf_keras==2.16.0",
    "apache-beam[gcp]==2.60.0",
    "dill",
    "tensorflow-datasets",
    "click",
    "tqdm",
    "matplotlib",
    "jinja2",
  ],
  extras_require={
    "test": ["pytest"],
    # Scheduled runs with TFX's AirflowDagRunner (pinned in requirements.lock).
    "airflow": ["apache-airflow>=2.10,<3"],
  },
  entry_points={"console_scripts": ["imdb-tfx=cli.main:main"]},
)
