"""Benchmarks: each `bench/<name>.py` with a `main()` writes its figures to `bench/results/<name>.md`."""
