"""A fitted model as a service: an MLflow Model (pyfunc) that scores texts and continues prefixes,
logged by the stages that fit models, registered by the evaluate stage, served by
`mlflow models serve` (`make serve`)."""
