"""The fork server that the tests' check runs and an experiment's observations are forked from."""

from __future__ import annotations

import importlib

import botocore.loaders
import pytest

from entmoot_ops import forkrun
from entmoot_ops.clients import aws_session


@pytest.mark.parametrize("module", forkrun.PRELOAD)
def test_every_module_the_fork_server_preloads_imports(module):
    """multiprocessing's fork server skips a preload whose import fails, without a word: the runs would still pass,
    only slower."""
    importlib.import_module(module)


def test_parsed_models_serve_a_later_client_without_reading_a_file(monkeypatch):
    monkeypatch.setattr(aws_session, "_LOADER", botocore.loaders.Loader(file_loader=aws_session._ModelFiles()))  # none parsed yet
    aws_session.parse_models(["sts"])

    def no_file(self, file_path):
        raise AssertionError(f"read {file_path} again")

    monkeypatch.setattr(aws_session._ModelFiles, "load_file", no_file)
    client = aws_session.botocore_session().create_client("sts", region_name="us-east-1", aws_access_key_id="unused", aws_secret_access_key="unused")
    assert client.meta.service_model.service_name == "sts"
