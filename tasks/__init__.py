"""Prefect tasks: one lifecycle action each, small and typed."""
