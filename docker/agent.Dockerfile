# fleetpulse node agent. Build from the repository root:
#   docker build -f docker/agent.Dockerfile -t fleetpulse-agent .
# Installs the base distribution only (`pip install .`): no storage stack (chdb, pyarrow,
# clickhouse-connect, uvicorn); tests/test_helm.py checks this file for it.
# NVML (libnvidia-ml.so.1) is not in the image: the NVIDIA container runtime injects it
# (NVIDIA_DRIVER_CAPABILITIES=utility, set by the Helm chart).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/fleetpulse
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
RUN /opt/fleetpulse/bin/pip install . \
 && find /opt/fleetpulse -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
LABEL org.opencontainers.image.title="fleetpulse-agent" \
      org.opencontainers.image.description="Fleet GPU hardware telemetry node agent" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 fleetpulse \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin fleetpulse
COPY --from=build /opt/fleetpulse /opt/fleetpulse
ENV PATH=/opt/fleetpulse/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9410
ENTRYPOINT ["fleetpulse"]
CMD ["agent"]
