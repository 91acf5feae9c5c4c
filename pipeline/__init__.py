"""One small module per DVC stage: read params.yaml, call the library, write outputs atomically."""
