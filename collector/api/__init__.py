"""Read API on the API port: tenant-scoped SQL, reports, health, readiness and self-metrics."""
