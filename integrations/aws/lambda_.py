"""AWS actions: lambda_ (being written)."""
