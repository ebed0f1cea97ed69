"""Entmoot operations suite: the operations runbook as executable, evidence-producing checks.

PYTEST_DONT_REWRITE: the package is imported before pytest starts where a run is forked (entmoot_ops.forkrun); its
modules hold no test asserts to rewrite.
"""
