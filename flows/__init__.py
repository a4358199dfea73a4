"""Prefect flows: each composes tasks into one lifecycle stage."""
