"""The action interface: the registry, the context actions run with, the built-in control actions."""
