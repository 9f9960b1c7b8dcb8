"""SLO and resource alerting: one YAML spec → Prometheus rules, Grafana-managed ClickHouse rules, runbooks."""
