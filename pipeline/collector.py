"""When Python's cyclic garbage collector runs during a pipeline run: off while a command
imports TensorFlow, TFX, Beam, TFMA and TFDV and while it writes the report after the run;
on during the run, with the imported modules frozen out of its walks.

Why: a full collection (generation 2) walks every tracked object, and with those modules
loaded one took 0.25-0.54 s, holding the GIL, so the components' Python threads and the
orchestrator waited meanwhile. Measured on the 2-core machine, one run each unless told
(2026-12-06): while the modules load, the collections walked everything loaded so far,
again as it grew: 1.0 s of the 4.2-4.4 s of the imports ``imdb-tfx run`` needs (two runs;
one collection after them with it off found 6,199 unreachable objects); inside the components, 9 full collections took
3.2 s, with the modules frozen 29 took 1.6 s (``gc.callbacks``); after the run, the first
full collection walked them all again (0.4 s) while the report was written; with the
collector off the report leaves about 100,000 unreachable objects (its figures) to the
process's exit, at the same peak memory (1,011-1,014 MB for the report alone, two runs
each with the collector on, frozen and off).
"""

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
  """The collector off within the block (``gc.disable``), and after it as it was before;
  a pipeline run inside turns it on for the run (``imports_frozen``). For a command that
  imports the pipeline's libraries, runs it and reports: what it leaves uncollected is
  the imports' few cycles and the report's."""
  enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if enabled:
      gc.enable()


@contextlib.contextmanager
def imports_frozen() -> Iterator[None]:
  """The collector on within the block, leaving alone every object that exists when it
  starts (``gc.freeze``; ``gc.unfreeze`` and the collector's previous state after): by
  then, the modules of TensorFlow, TFX, Beam, TFMA and TFDV that the pipeline's components
  import, which live as long as the process.

  Objects the components create are still collected. Nothing is collected later than
  without the block except cyclic garbage that already existed when it started, which
  ``gc.unfreeze`` hands back.
  """
  enabled = gc.isenabled()
  gc.freeze()
  gc.enable()
  try:
    yield
  finally:
    gc.unfreeze()
    if not enabled:
      gc.disable()
