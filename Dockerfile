# The one image every worker of a pool runs flows in: what `make install` does (the lock, then the
# project without dependencies), on the Python the project is tested with.
#   python -m deployments.image build        # docker build -t prefect-mlops:<version> .
# Work-pool templates wired to it: deployments/work-pools/docker.json and kubernetes.json.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    GX_ANALYTICS_ENABLED=false \
    MLFLOW_ENABLE_TELEMETRY=false \
    DO_NOT_TRACK=true \
    MLOPS_PROJECT_DIR=/opt/prefect-mlops

WORKDIR /opt/prefect-mlops

# The lock first, alone: its layer is rebuilt only when the pins change.
COPY requirements.lock ./
RUN python -m pip install --upgrade pip \
    && python -m pip install -r requirements.lock

COPY . .
RUN python -m pip install --no-deps -e . \
    && useradd --create-home --uid 10001 mlops \
    && chown -R mlops /opt/prefect-mlops

# Flow runs read configs/ and great_expectations/ relative to MLOPS_PROJECT_DIR (prefect.yaml's
# pull step); artifacts, the tracking server and the prediction log come from the environment.
USER mlops
CMD ["prefect", "worker", "start", "--pool", "mlops-process", "--type", "process"]
