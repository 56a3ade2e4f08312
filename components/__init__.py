"""Custom TFX components of the IMDB pipeline."""
