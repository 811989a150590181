"""AWS actions: logs (being written)."""
