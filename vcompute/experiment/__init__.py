"""Experiments: TOML configs, the runner, executors, results and plots."""
