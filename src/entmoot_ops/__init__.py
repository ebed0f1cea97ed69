"""Entmoot operations suite: the operations runbook as executable, evidence-producing checks."""
