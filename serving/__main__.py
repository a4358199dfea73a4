"""`python -m serving --model NAME`: the same as `mlops serve`."""

from serving.cli import app

app()
