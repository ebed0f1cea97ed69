"""A game day (--gameday): its experiments become the run's selection, in their order, and its report is written
when the session ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from entmoot_ops.chaos.gameday import GameDay
from entmoot_ops.pytest_plugin.state import SUITE_KEY, check_id


def from_options(config: pytest.Config, selects_chaos: bool, environments: list[str]) -> GameDay | None:
    """A game day's experiments become the run's selection (--check), in the order given."""
    given = config.getoption("entmoot_gameday")
    if given is None:
        return None
    order = tuple(dict.fromkeys(name.strip() for name in given.split(",") if name.strip()))
    if not order or not selects_chaos:
        raise pytest.UsageError("--gameday names the experiments of a chaos run: -m chaos --gameday a,b")
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("a game day runs its experiments one after the other: drop -n")
    if len(environments) > 1:  # its report is one environment's: several would mix their journals in one
        raise pytest.UsageError(f"a game day is against one environment, not {len(environments)} ({', '.join(environments)}): "
                                "give one --env")
    config.option.entmoot_checks = [*config.getoption("entmoot_checks"), *(f"chaos.{name}" for name in order)]
    return GameDay(order, max(0.0, config.getoption("entmoot_gameday_pause")))


def order(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The game day's experiments run in the order it names them."""
    gameday = config.stash[SUITE_KEY].gameday
    if gameday is not None:
        rank = {f"chaos.{name}": index for index, name in enumerate(gameday.order)}
        items.sort(key=lambda item: rank.get(check_id(item), len(rank)))  # a --check besides them comes after


def write_report(session: pytest.Session) -> None:
    """The game day's report, of the journals its experiments handed, in REPORTS/gameday/ (and Allure)."""
    suite = session.config.stash.get(SUITE_KEY, None)
    if suite is not None and suite.gameday is not None and suite.gameday.journals:
        results = getattr(session.config.option, "allure_report_dir", None)
        written = suite.gameday.write(next(iter(suite.environments)), (suite.reports_dir or Path("reports")) / "gameday",
                                      Path(results) if results else None)
        session.config.get_terminal_writer().line(f"game day report: {written}")


@pytest.fixture(scope="session")
def gameday(request: pytest.FixtureRequest) -> GameDay | None:
    """The game day this run is (--gameday), else None: its chaos checks pause between them and hand their journals."""
    return request.config.stash[SUITE_KEY].gameday
