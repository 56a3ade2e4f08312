"""Analysis and benchmarks, above what they measure: scoring and explaining a pushed
SavedModel, the model benchmark (through the pipeline) with its plain-Keras reference,
the serving benchmark (through the development server) and the command-line start-up
benchmark."""
