"""The run record: the hash-chained event log, the evidence manifest, and their verification."""
