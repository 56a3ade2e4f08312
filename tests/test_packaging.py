"""What gets installed: ``setup.py`` lists every package of the source tree, and the images
of ``deploy/Dockerfile`` copy every package ``setup.py`` installs (Docker itself is not
available here; a missing directory would fail ``pip install .`` in the image build, a
missing subpackage only at run time)."""

import ast
import os
import re

from pipeline import kubeflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_packages():
  with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
    tree = ast.parse(f.read())
  [packages] = [
    node.value
    for node in ast.walk(tree)
    if isinstance(node, ast.keyword) and node.arg == "packages"
  ]
  return set(ast.literal_eval(packages))


def _source_packages():
  found = set()
  for dirpath, dirnames, filenames in os.walk(ROOT):
    rel = os.path.relpath(dirpath, ROOT)
    dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("tests", "build")]
    if rel != "." and "__init__.py" in filenames:
      found.add(rel.replace(os.sep, "."))
  return found


def _dockerfile():
  with open(os.path.join(ROOT, "deploy", "Dockerfile"), encoding="utf-8") as f:
    return f.read()


def test_setup_installs_every_package_of_the_source_tree():
  packages = _setup_packages()
  assert "analysis.report" in packages
  assert packages == _source_packages()


def test_the_image_copies_every_installed_package_where_kubeflow_expects_it():
  dockerfile = _dockerfile()
  copied = set(re.findall(r"^COPY (\w+)/ \1/$", dockerfile, re.M))
  assert copied == {p.split(".")[0] for p in _setup_packages()}
  # The setup file the in-container Beam options name is the image's copy.
  workdir = re.search(r"^WORKDIR (\S+)$", dockerfile, re.M).group(1)
  assert workdir == kubeflow.CONTAINER_PROJECT_DIR
  assert "COPY setup.py ./" in dockerfile
  assert f"--setup_file={workdir}/setup.py" in kubeflow.CONTAINER_BEAM_ARGS
