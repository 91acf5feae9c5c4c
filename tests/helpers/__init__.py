"""Helpers shared by the test modules (no test module imports another).

`project`: the committed project (params.yaml as at HEAD, never the workspace's); `stages`: a tiny
corpus and the files the stages before training leave; `dvc_project`: the pipeline in a temporary
git + DVC repository; `servers`: free ports and waiting for a server's health check.
"""
