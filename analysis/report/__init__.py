"""The run report: an HTML page per pipeline run, and a history page across runs, built
from ML Metadata and the artifacts it points to (``imdb-tfx report``).

``collect`` reads a run from MLMD, ``sections`` turns each kind of artifact into a part of
the page (``templates``, ``figures``), and ``page`` writes the pages.
"""
