"""The agent's quality, measured: `make eval` (or `python -m evals`), results in `evals/results/`."""
