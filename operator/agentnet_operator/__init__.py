"""agentnet operator: reconciles AgentNetwork resources into Kubernetes objects."""
