"""The pair protocol: rounds with checkpoints, verdicts and findings, the governor, the referee."""
