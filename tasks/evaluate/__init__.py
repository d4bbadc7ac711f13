"""Evaluation (stage 8): caption metrics, clinical word-matching accuracy, significance, the per-scanner report.

Entry point for flows and the CLI: ``tasks.evaluate.run.evaluate_run``.
"""
