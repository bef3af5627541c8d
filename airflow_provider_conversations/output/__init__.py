"""What leaves a task: records shaped (raw or normalized, minus excluded fields), the object layout, and the
atomic, byte-deterministic writer."""
