# fleetpulse collector (OTLP receiver, WAL, ClickHouse writer, read API). Build from the repository root:
#   docker build -f docker/collector.Dockerfile -t fleetpulse-collector .
# Installs `.[collector]`: clickhouse-connect, chdb (embedded store), pyarrow, grpcio, uvicorn.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/fleetpulse
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY collector ./collector
RUN /opt/fleetpulse/bin/pip install ".[collector]" \
 && find /opt/fleetpulse -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
LABEL org.opencontainers.image.title="fleetpulse-collector" \
      org.opencontainers.image.description="Fleet GPU telemetry OTLP collector and ClickHouse writer" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 fleetpulse \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin fleetpulse \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/fleetpulse
COPY --from=build /opt/fleetpulse /opt/fleetpulse
ENV PATH=/opt/fleetpulse/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/var/lib/fleetpulse"]
EXPOSE 4317 4318 4319
ENTRYPOINT ["fleetpulse"]
CMD ["collector", "--config", "/etc/fleetpulse/collector.yaml"]
