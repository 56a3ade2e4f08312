"""The bottom layer, shared by every other package and importing none of them: the process
environment of the entry points, the feature keys, and the SavedModel's serving contract
(model name, signatures, warmup requests)."""
