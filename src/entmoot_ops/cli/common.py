"""What every command group shares: the environment a command acts on, its refusals, the project's checks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from entmoot_ops.errors import ConfigError, OpsError

if TYPE_CHECKING:
    from entmoot_ops.config import Environment


def plain(text: str) -> str:
    """A docstring's words for a terminal: without the ``literal`` markup they carry for the source's reader."""
    return text.replace("``", "")


class Refused(OpsError):
    """A request the command will not carry out as asked: exit 4, like a usage error, before any call."""


def environment_of(arguments: argparse.Namespace) -> Environment:
    """The environment a command acts on; what it prints from it is redacted by that environment's rules."""
    from entmoot_ops import redaction
    from entmoot_ops.config import environments_dir, load_environment

    env = load_environment(arguments.env, arguments.environments_dir or environments_dir())
    redaction.adopt([env.redaction])
    return env


def declared_policies(env: object) -> dict:
    from entmoot_ops import iam

    # The remediations live in the project beside checks/, as pytest finds them: run from the project's directory.
    sys.path.insert(0, str(Path.cwd()))
    try:
        return iam.policies(env)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the IAM policies read the remediations of the project: {exc}",
                          fix="run it from the project's directory (the one holding checks/ and remediations/)") from None


def project_checks(checks_dir: Path) -> list:
    """The catalogue of the project's checks (run from the project's directory, as pytest runs them)."""
    from entmoot_ops import check_catalogue

    if not checks_dir.is_dir():
        raise ConfigError(f"no checks directory at {checks_dir.resolve()}",
                          fix="run it from the project's directory (the one holding checks/), or pass --checks-dir")
    sys.path.insert(0, str(checks_dir.resolve().parent))
    return check_catalogue.checks(checks_dir)
