"""Neural language models and their training: the models, the book's minibatch iterators, the
Lightning data and training modules, the Trainer, the MLflow run of a training, inference."""
