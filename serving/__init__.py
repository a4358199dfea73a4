"""The prediction service: serves the aliased MLflow model over REST (see `serving.app`)."""
