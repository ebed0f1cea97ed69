"""Who may run which experiment where: chaos breaks things on purpose, so every refusal is said in one line."""

from __future__ import annotations

from entmoot_ops.chaos.experiment import Experiment
from entmoot_ops.config import Environment
from entmoot_ops.errors import ConfigError


def refuse_unless_allowed(env: Environment, *, confirmed: bool, experiment: Experiment | None = None) -> None:
    """For any experiment against ``env``: the environment's own opt-in, and --yes on production; given one, that
    experiment's own allowance (:func:`refusal`), with how to grant it."""
    if not env.chaos.allowed:
        raise ConfigError(f"chaos.allowed is not true for {env.name}: chaos experiments against it are refused",
                          fix=f"set [chaos] allowed = true and experiments = [...] in {env.name}.toml")
    if env.production and not confirmed:
        raise ConfigError(f"{env.name} is production: a chaos experiment needs --yes", fix="add --yes to confirm")
    refused = _refusal(env, experiment) if experiment is not None else None
    if refused is not None:
        reason, fix = refused
        raise ConfigError(reason, fix=fix)


def refusal(env: Environment, experiment: Experiment) -> str | None:
    """Why this experiment may not run against ``env`` (None: it may)."""
    refused = _refusal(env, experiment)
    return refused[0] if refused is not None else None


def _refusal(env: Environment, experiment: Experiment) -> tuple[str, str] | None:
    """Why this experiment may not run against ``env``, and what would allow it."""
    chaos = env.chaos
    if experiment.origin not in (None, env.name):
        return (f"{experiment.name} is an experiment of {experiment.origin} ({experiment.path}), not of {env.name}",
                f"run it with --env {experiment.origin}, or copy its file into the project's experiments/")
    if experiment.name not in chaos.experiments:
        return (f"{experiment.name} is not in chaos.experiments of {env.name}.toml",
                f'add "{experiment.name}" to [chaos] experiments in {env.name}.toml')
    if experiment.platform == "sandbox" and env.kind != "sandbox":
        return (f"{experiment.name} acts on the sandbox's own servers; {env.name} is not a sandbox",
                "run it against a sandbox environment")
    if experiment.touches_primary and not chaos.primary_allowed:
        return (f"{experiment.name} acts on the primary database; chaos.primary_allowed is not true for {env.name}",
                f"set [chaos] primary_allowed = true in {env.name}.toml")
    return None
