"""The ``imdb-tfx`` command line, the top layer: it parses options and calls the layers
below (``pipeline``, ``analysis``, ``serving``). Each command module imports only click
and light constants at import time; what a command needs it imports when it runs, so
``imdb-tfx --help`` and the serving client commands start in about a second."""
