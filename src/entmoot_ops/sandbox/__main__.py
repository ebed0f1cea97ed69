"""``python -m entmoot_ops.sandbox serve --state-file F [--parent-pid P]``: the sandbox process itself."""

import argparse
import contextlib
import gc
import shutil
import sys
import tempfile
from pathlib import Path

from entmoot_ops.sandbox.postgres import PostgresPair

# The start builds half a million objects that live as long as the sandbox (moto's backends, botocore's models): with
# the collector on, its full collections walk them again and again, a third of the start's CPU. The supervisor
# collects once and turns it back on when it is ready.
gc.disable()

parser = argparse.ArgumentParser(prog="python -m entmoot_ops.sandbox")
commands = parser.add_subparsers(dest="command", required=True)
serve_parser = commands.add_parser("serve")
serve_parser.add_argument("--state-file", type=Path, required=True)
serve_parser.add_argument("--parent-pid", type=int)
arguments = parser.parse_args()
root = Path(tempfile.mkdtemp(prefix="entmoot-sandbox-"))
postgres = None
try:
    root.chmod(0o711)  # the PostgreSQL user must reach its data directory below
    # PostgreSQL, the longest part of the start (about 2 s), begins before the supervisor's imports (moto, aiohttp:
    # over a second), which then overlap it.
    postgres = PostgresPair(root / "pg")
    postgres_started = postgres.start_in_background()

    from entmoot_ops.sandbox.control import serve  # noqa: E402 - after PostgreSQL's start began, on purpose
except BaseException:
    # Ctrl-C (or a failure) before the supervisor takes charge of the servers and the directory: stop what started,
    # and leave no data directory behind.
    if postgres is not None:
        with contextlib.suppress(BaseException):
            postgres_started()
        postgres.close()
    shutil.rmtree(root, ignore_errors=True)
    raise

sys.exit(serve(arguments.state_file, arguments.parent_pid, root, postgres, postgres_started))
