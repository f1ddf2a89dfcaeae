"""Training: the parameter table, the job, batching, the loop and its events, estimates, ranks."""
