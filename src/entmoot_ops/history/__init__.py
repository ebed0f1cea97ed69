"""The on-call's memory: every run of every check remembered, per environment, check and resource.

- ``changes``: what changed since the last run (new, still, resolved) and Nagios' flap detection;
- ``forecast``: where a gauge is heading, and when it would cross its threshold at the recent rate;
- ``silences``: known problems silenced until a date, with a reason, kept beside the environment's file;
- ``store``: where runs are kept, SQLite on this machine or a team's PostgreSQL database, migrated by the suite.
"""
