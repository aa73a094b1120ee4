"""`agentnet up`: a whole network in one local process, like `spin up`."""
