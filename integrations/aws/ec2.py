"""AWS actions: ec2 (being written)."""
