"""``python -m entmoot_ops.sandbox serve --state-file F [--parent-pid P]``: the sandbox process itself."""

import argparse
import sys
from pathlib import Path

from entmoot_ops.sandbox.supervisor import serve

parser = argparse.ArgumentParser(prog="python -m entmoot_ops.sandbox")
commands = parser.add_subparsers(dest="command", required=True)
serve_parser = commands.add_parser("serve")
serve_parser.add_argument("--state-file", type=Path, required=True)
serve_parser.add_argument("--parent-pid", type=int)
arguments = parser.parse_args()
sys.exit(serve(arguments.state_file, arguments.parent_pid))
