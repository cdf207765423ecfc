"""Prometheus metrics of the broker, its groups and its certificates."""
