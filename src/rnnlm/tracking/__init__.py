"""MLflow as the project's record: where the store is and which experiment (`connection`), how a
run is opened and tagged (`records`), the Lightning logger of a training (`run_logger`), runs left
RUNNING by dead processes (`orphans`), a damaged SQLite store told apart from a missing one
(`health`), the store as a view of the repository (`workspace` reads the fitted models from the
files DVC tracks, `sync` records and registers them) and the runs as tables (`runs`)."""
