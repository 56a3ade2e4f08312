"""Serving the pushed model over TF Serving's gRPC API: a client, a development server
compatible with that API, and SavedModel warmup records."""
