"""Model registry actions (being written)."""
