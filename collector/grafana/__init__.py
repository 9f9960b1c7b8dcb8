"""Grafana helpers shared by the dashboards and alerting generators."""
