"""`collector bench`: the end-to-end throughput benchmark, with its baselines measured alongside."""
