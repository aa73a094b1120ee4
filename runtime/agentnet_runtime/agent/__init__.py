"""Agents: a block of CRDT e-graph replicas syncing with their neighbours over NATS."""
