"""The three wire protocols, each translated to validated columns for the predictor.

`predict` is this service's own (`{"records": [...]}`, and `/feedback`); `invocations` speaks the
formats of `mlflow models serve` (JSON, or CSV with a header row); `open_inference` is the Open
Inference Protocol v2 (KServe, Triton).
"""
