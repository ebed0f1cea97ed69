"""botocore sessions for the suite: model files decoded fast, timestamps parsed directly, and credentials from where
the environment says (keys, a profile, the environment, the instance), a role assumed where asked."""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.loaders
import botocore.parsers
import botocore.session
import botocore.utils



class _ModelFiles(botocore.loaders.JSONFileLoader):
    """botocore's model files, decoded into plain dicts (which keep their order): botocore's own decoding builds an
    OrderedDict through a Python hook, which doubles the time of a process's first clients."""

    def load_file(self, file_path: str) -> Any:
        for suffix, opener in ((".json", open), (".json.gz", gzip.open)):
            if os.path.isfile(file_path + suffix):
                with opener(file_path + suffix, "rb") as data:
                    return json.loads(data.read())
        return None


# One loader per process: a service's model is parsed once, whatever the number of environments (one botocore
# session each) a run checks.
_LOADER = botocore.loaders.Loader(file_loader=_ModelFiles())


def _timestamp(value: Any) -> datetime:
    """botocore's own parser builds a dateutil tzlocal and runs dateutil's parser for each timestamp: a day of
    one-minute datapoints is thousands of them."""
    if not isinstance(value, str):
        return datetime.fromtimestamp(value, UTC)
    with contextlib.suppress(ValueError):
        return datetime.fromtimestamp(float(value), UTC)
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value)
    return botocore.utils.parse_timestamp(value)  # RFC 822 and the other forms AWS writes


_PARSERS = botocore.parsers.ResponseParserFactory()


def botocore_session(profile: str | None = None) -> botocore.session.Session:
    """botocore's session, with the process's loader and timestamp parser."""
    session = botocore.session.Session(profile=profile)
    session.register_component("data_loader", _LOADER)
    session.register_component("response_parser_factory", _PARSERS)
    return session


# botocore's providers that ask the ECS container credentials endpoint and the EC2 instance metadata service.
INSTANCE_PROVIDERS = ("container-role", "iam-role")


ENVIRONMENT_PROVIDERS = ("env", "assume-role-with-web-identity")


SOURCES = {"keys": "in aws.access_key_id and aws.secret_access_key", "profile": "in aws.profile",
           "environment": "in the environment (AWS_ACCESS_KEY_ID, AWS_WEB_IDENTITY_TOKEN_FILE)",
           "chain": "in the environment, a profile, an SSO session or credential_process",
           "instance": "from the instance's or the ECS task's role"}


def credentials_from(session: botocore.session.Session, source: str, keys: tuple[str, str] | None) -> None:
    """Keep only the providers of the environment's credential source: the instance metadata service is asked only
    where the environment says it runs on an instance."""
    resolver = session.get_component("credential_provider")
    if keys is not None:
        resolver.providers = [GivenCredentials(botocore.credentials.Credentials(*keys, method="explicit"))]
    elif source == "instance":
        resolver.providers = [p for p in resolver.providers if p.METHOD in INSTANCE_PROVIDERS]
    elif source == "environment":
        resolver.providers = [p for p in resolver.providers if p.METHOD in ENVIRONMENT_PROVIDERS]
    else:
        resolver.providers = [p for p in resolver.providers if p.METHOD not in INSTANCE_PROVIDERS]


class GivenCredentials(botocore.credentials.CredentialProvider):
    """Credentials the environment names (its keys, or the role assumed with them)."""

    METHOD = "explicit"

    def __init__(self, credentials: botocore.credentials.Credentials):
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


def assume_role(session: botocore.session.Session, role_arn: str, region: str, endpoint: str | None) -> None:
    """The session's credentials become the role's, assumed with the source's own and refreshed before they expire
    (botocore's fetcher, as a profile's role_arn is)."""
    resolver = session.get_component("credential_provider")
    base = resolver.load_credentials()
    if base is None:  # aws_credentials says so
        return
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=functools.partial(session.create_client, region_name=region, endpoint_url=endpoint),
        source_credentials=base, role_arn=role_arn, extra_args={"RoleSessionName": "entmoot-ops"})
    resolver.providers = [GivenCredentials(botocore.credentials.DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials))]


def parse_models(services: Iterable[str]) -> None:
    """Parse these services' models into the process's loader, as their first clients would (a client each, made and
    dropped: no call, no credentials read): a process forked afterwards starts with them parsed."""
    session = botocore_session()
    for service in services:
        session.create_client(service, region_name="us-east-1", aws_access_key_id="unused", aws_secret_access_key="unused")
