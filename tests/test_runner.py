"""pipeline.runner: the collector leaves the imported modules alone while a pipeline runs."""

import gc
import weakref

import pytest

from pipeline import runner


class _Node:
  """A cyclic-garbage candidate."""

  def __init__(self):
    self.me = self


def test_existing_objects_are_frozen_and_new_cycles_still_collected():
  before = _Node()
  tracked = len(gc.get_objects())
  with runner.imports_frozen():
    assert gc.get_freeze_count() >= tracked
    assert len(gc.get_objects()) < tracked  # what the collector still walks
    created = _Node()
    alive = weakref.ref(created)
    del created
    gc.collect()
    assert alive() is None  # a cycle made inside the block is collected
    old = weakref.ref(before)
    del before
    gc.collect()
    assert old() is not None  # a cycle that existed before waits for the unfreeze
  assert gc.get_freeze_count() == 0
  gc.collect()
  assert old() is None


def test_an_error_inside_unfreezes():
  with pytest.raises(RuntimeError), runner.imports_frozen():
    assert gc.get_freeze_count() > 0
    raise RuntimeError("component failed")
  assert gc.get_freeze_count() == 0
