"""The results files: where junit and Allure write by default, the junit file held back and the last run's Allure
results kept until checks really start (a typo must not destroy the last run's evidence), Allure's verdicts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from _pytest import junitxml

from entmoot_ops import reports
from entmoot_ops.pytest_plugin.state import SUITE_KEY

HELD_JUNIT_KEY = pytest.StashKey[Any]()


def direct(config: pytest.Config, reports_dir: Path) -> None:
    """junit and Allure write into the reports directory, unless told otherwise."""
    if not config.option.xmlpath:
        config.option.xmlpath = str(reports_dir / "junit.xml")
    if getattr(config.option, "allure_report_dir", None) is None:
        # Each run's results alone: a report must not mix runs or environments. They are emptied once checks
        # really start (start), not before: a typo must not destroy the last run's evidence.
        config.option.allure_report_dir = str(reports_dir / "allure-results")


def report_verdicts_in_allure(config: pytest.Config) -> None:
    config.pluginmanager.register(reports.AllureVerdicts(), "entmoot-allure-verdicts")


def hold_junit(config: pytest.Config) -> None:
    """The junit file is held back until checks really start."""
    logxml = config.stash.get(junitxml.xml_key, None)
    if logxml is not None:
        config.pluginmanager.unregister(logxml)
        del config.stash[junitxml.xml_key]  # junitxml's unconfigure unregisters what it finds there
        config.stash[HELD_JUNIT_KEY] = logxml


def start(config: pytest.Config) -> None:
    """Checks are about to run: empty the last run's Allure results, and let the junit file be written."""
    suite = config.stash[SUITE_KEY]
    if suite.started:
        return
    suite.started = True
    results = getattr(config.option, "allure_report_dir", None)
    if results and suite.reports_dir is not None:
        shutil.rmtree(results, ignore_errors=True)
        Path(results).mkdir(parents=True, exist_ok=True)
    logxml = config.stash.get(HELD_JUNIT_KEY, None)
    if logxml is not None:
        config.pluginmanager.register(logxml)
        config.stash[junitxml.xml_key] = logxml
        logxml.pytest_sessionstart()


def write_empty(config: pytest.Config) -> None:
    """The reports of a run that had nothing to run (a shard left empty): no result, a junit file of no test, and a
    summary of no check that says which shard of which selection it was."""
    suite = config.stash[SUITE_KEY]
    if suite.reports_dir is None:
        return
    results = Path(config.option.allure_report_dir)
    shutil.rmtree(results, ignore_errors=True)
    reports.write_allure_metadata(results, suite.environments.values())
    junit = Path(config.option.xmlpath)
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" '
                     'errors="0" failures="0" skipped="0" tests="0" time="0.000" /></testsuites>\n', encoding="utf-8")
    reports.write_summary_json(suite.reports_dir / "summary.json", [], marker=config.option.markexpr or "all",
                               wall_seconds=time.monotonic() - suite.began, run=run_of(config))


def run_of(config: pytest.Config) -> dict:
    """What a run was, for a fleet's merge to join only the shards of one run: its selection, its environments, and
    its shard of how many."""
    suite = config.stash[SUITE_KEY]
    return {"environments": sorted(suite.environments), "marker": config.option.markexpr or "all",
            "keyword": config.option.keyword or "", "checks": sorted(config.getoption("entmoot_checks")),
            "shard": suite.shard}
