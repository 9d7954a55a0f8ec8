"""The three stages. Plain classes that take and return batches; they know nothing of Ray."""
