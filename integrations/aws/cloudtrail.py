"""AWS actions: cloudtrail (being written)."""
