"""AWS actions: s3 (being written)."""
