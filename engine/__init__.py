"""The engine: registry, invocation routing and the built-in modules."""
