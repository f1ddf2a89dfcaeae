"""Evaluation: held-out loss, answers scored against references, regressions and drift from the base."""
