"""OTLP receivers: gRPC (grpcio) and HTTP (Starlette on uvicorn), sharing one ingest core."""
