"""AWS actions: iam (being written)."""
