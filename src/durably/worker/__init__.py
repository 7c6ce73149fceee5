"""A worker: the executor that runs claimed runs, the claim loop, and the heartbeat."""
