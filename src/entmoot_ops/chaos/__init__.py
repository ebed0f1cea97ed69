"""Chaos experiments: steady state, fault actions, observation by the suite's own checks, rollbacks, recovery.

- ``observe``: read-only: the suite's checks run as a user runs them, and the safeguard probes;
- ``actions``: the faults (they write): the sandbox's, and AWS's own (ECS, RDS, ElastiCache, FIS);
- ``experiment``: the model and the runner, with its journal;
- ``catalog``: the experiments the suite offers; ``guard``: who may run which;
- ``matrix``: every sandbox fault against the checklists: the suite's measure of its own detection power.
"""
