"""The Kubernetes operator (kopf): Cluster, Topic, ConsumerGroup and User resources of
odradek.io/v1alpha1. It reaches the brokers only through odradek.client.

Domain logic (desired state, diff, plan, rendering) lives in plain modules with no kopf
import (topics.py, users.py, groups.py, cluster.py); the kopf handlers in handlers/ are
thin. `odradek operator` runs it (odradek/operator/main.py).
"""
