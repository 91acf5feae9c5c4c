"""A team's stack on one machine, on 127.0.0.1: `rnnlm team up|down|env` (`make team-up`,
`make team-down`). One module per service and `stack`, which puts them together:

- `postgres`: a PostgreSQL cluster (Debian's `initdb`, `pg_ctl`) holding the MLflow server's
  store and its users;
- `object_store`: an S3-compatible store (moto's S3 emulator) with one bucket, for the MLflow
  server's artifacts and a DVC remote;
- `tracking_server`: `mlflow server --app-name basic-auth` on PostgreSQL and the bucket, proxying
  artifacts, with a team user allowed to write the project's runs and models;
- `processes`: starting, waiting for and stopping their processes.

In production the same three services run on separate hosts with real credentials (a managed
PostgreSQL, S3 or MinIO, the server behind TLS); docs/teams.md maps each setting here to its
production form.
"""
