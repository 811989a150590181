"""AWS actions: sagemaker (being written)."""
