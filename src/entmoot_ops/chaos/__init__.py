"""Chaos experiments: steady state, fault actions, observation by the suite's own checks, rollbacks, recovery.

- ``observe``: read-only: the suite's checks run as a user runs them, and the safeguard probes;
- ``actions``: the faults (they write): the sandbox's, and AWS's own (ECS, RDS, ElastiCache, FIS);
- ``experiment``: the model and the runner, with its journal;
- ``files``: experiment files (TOML) as users write them; ``catalog``: those a run offers (the project's
  ``experiments/`` and each environment's); ``guard``: who may run which;
- ``gameday``: experiments in order, and one report of them all;
- ``matrix``: every sandbox fault against the checklists: the suite's measure of its own detection power.
"""
