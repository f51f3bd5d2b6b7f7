"""`pokazy …`: the commands, and nothing else."""
