"""``entmoot-ops``: the sandbox on its own (for psql, redis-cli, the aws CLI, locust) and the Allure report.

The checks themselves run through pytest (``pytest checks/ -m morning``); this command is for the rest, one module
per command group.
"""

from __future__ import annotations

import argparse
import sys

from entmoot_ops.cli import chaos, memory, operate, reporting, sandbox
from entmoot_ops.cli.common import Refused, plain
from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.secrets import masker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="entmoot-ops", description=plain(__doc__.splitlines()[0]))
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (sandbox, operate, chaos, reporting, memory):
        group.add_commands(commands)
    arguments = parser.parse_args(argv)
    try:
        return arguments.run(arguments)
    except BrokenPipeError:  # `entmoot-ops sandbox env | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except OpsError as exc:
        print(masker(f"entmoot-ops: {exc.with_fix()}"), file=sys.stderr)
        return 4 if isinstance(exc, (Refused, ConfigError)) else 2


if __name__ == "__main__":
    sys.exit(main())
