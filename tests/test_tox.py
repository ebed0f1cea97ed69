"""tox strips the environment: a user behind a proxy or a private CA must still be able to install (pip) and
fetch the Allure command line (npm). Every tox environment that installs or fetches passes these through."""

from __future__ import annotations

import configparser

from conftest import ROOT

NEEDED = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE",
          "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PIP_*", "npm_config_*"}


def test_every_environment_passes_proxy_and_ca_variables():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    base = set(tox["testenv"]["passenv"].split())
    assert NEEDED <= base, NEEDED - base
    environments = [name for name in tox.sections() if name.startswith("testenv:")]
    assert {"testenv:tests", "testenv:morning", "testenv:report"} <= set(environments)
    for name in environments:  # an environment that sets its own passenv must not drop them
        assert NEEDED <= set(tox[name].get("passenv", " ".join(base)).split()), name
