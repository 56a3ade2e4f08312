"""Feature keys, hyperparameters, preprocessing, layers, model builders and the Trainer's run_fn."""
