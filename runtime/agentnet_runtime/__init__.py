"""agentnet runtime: the CRDT e-graph engine, agents and service components.

Nothing in this package imports kopf or the Kubernetes client, so an agent
process starts fast and the image can run without cluster credentials.
"""

__version__ = "0.1.0"
