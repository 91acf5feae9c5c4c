"""The MLflow store as a view of the repository: reading the workspace's fitted models from the
files DVC tracks (`workspace`), bringing the store in line with them (`sync`), and telling a
damaged store apart from a missing one (`health`)."""
