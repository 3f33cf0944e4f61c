"""Planners turn a request into tool calls: rules over the resolver (offline) or a chat model (LLM)."""
