"""Deterministic simulation of whole brokers (see world.py): ``python -m tests.sim_broker.run``."""
