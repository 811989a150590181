"""The playbook language: the fireline/v1 models, the safe YAML loader, diagnostics, the DAG and lint."""
