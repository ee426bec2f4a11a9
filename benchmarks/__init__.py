"""ModelMesh Lite benchmarks: the core's routing cost, the HTTP overhead against a bare
`requests.Session`, and import time. Run `python benchmarks/run.py` (see README.md)."""
