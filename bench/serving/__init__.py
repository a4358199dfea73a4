"""Benchmark of the prediction service against `mlflow models serve`."""
