"""pipeline.collector: the collector is off while a command loads the libraries and
reports, and leaves the imported modules alone while a pipeline runs."""

import gc
import weakref

import pytest

from pipeline import collector


class _Node:
  """A cyclic-garbage candidate."""

  def __init__(self):
    self.me = self


@pytest.fixture(autouse=True)
def _collector_restored():
  enabled = gc.isenabled()
  yield
  gc.unfreeze()
  if enabled:
    gc.enable()
  else:
    gc.disable()


def test_existing_objects_are_frozen_and_new_cycles_still_collected():
  before = _Node()
  tracked = len(gc.get_objects())
  with collector.imports_frozen():
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
  with pytest.raises(RuntimeError), collector.imports_frozen():
    assert gc.get_freeze_count() > 0
    raise RuntimeError("component failed")
  assert gc.get_freeze_count() == 0


def test_paused_turns_the_collector_off_and_back_as_it_was():
  gc.enable()
  with collector.paused():
    assert not gc.isenabled()
  assert gc.isenabled()
  gc.disable()
  with collector.paused():
    assert not gc.isenabled()
  assert not gc.isenabled()  # a caller's choice stands
  gc.enable()
  with pytest.raises(RuntimeError), collector.paused():
    raise RuntimeError("the run failed")
  assert gc.isenabled()


def test_a_run_inside_a_pause_collects_and_the_pause_resumes_after():
  gc.enable()
  with collector.paused():
    with collector.imports_frozen():
      assert gc.isenabled() and gc.get_freeze_count() > 0
      created = _Node()
      alive = weakref.ref(created)
      del created
      # The collector runs by itself again: enough new container objects set it off.
      for _ in range(10 * gc.get_threshold()[0]):
        _Node()
      assert alive() is None
    assert not gc.isenabled() and gc.get_freeze_count() == 0
    left = _Node()
    uncollected = weakref.ref(left)
    del left
    for _ in range(10 * gc.get_threshold()[0]):
      _Node()
    assert uncollected() is not None  # nothing collects during the pause
  assert gc.isenabled()
