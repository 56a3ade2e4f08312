"""The IMDB TFX pipeline definition, its runners and the ``imdb-tfx`` command line."""
