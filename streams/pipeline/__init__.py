"""The worker: admission, per-batch delivery, judging with the domain, state, replies, rows."""
