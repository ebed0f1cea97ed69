"""An environment file read and validated: every mistake named with its key, one line each, a secret never echoed."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from entmoot_ops.errors import ConfigError
from entmoot_ops.config.environment import Environment
from entmoot_ops.config.references import SECRET_PATTERN


M = TypeVar("M", bound=BaseModel)


def environments_dir() -> Path:
    return Path(os.environ.get("ENTMOOT_ENVIRONMENTS", Path.cwd() / "environments"))


def load_environment(name: str, directory: Path | None = None) -> Environment:
    directory = directory or environments_dir()
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.toml") if "." not in p.stem) if directory.is_dir() else []  # not NAME.silences
        raise ConfigError(f"{path}: no such environment {name!r} (known: {', '.join(known) or 'none'})")
    data = read_toml(path)
    data.setdefault("name", name)
    if data["name"] != name:
        raise ConfigError(f"{path}: name: {data['name']!r} does not match the file name {name!r}")
    return validated(path, Environment, data)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None


def validated(path: Path, model: type[M], data: dict[str, Any]) -> M:
    """``data`` (a TOML file's) as ``model``, strictly. Every mistake of the file is named, one line each with its
    key: fixed one at a time, a file with three would take three runs to learn it."""
    try:
        return model.model_validate(_tuples(data))
    except ValidationError as exc:
        errors = exc.errors()
        mistakes = [f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {_explain(error)}"
                    for error in errors if not _echo(error, errors)]
        if len(mistakes) == 1:
            raise ConfigError(f"{path}: {mistakes[0]}") from None
        raise ConfigError(f"{path}: {len(mistakes)} mistakes\n" + "\n".join(f"  {mistake}" for mistake in mistakes)) from None


def _echo(error: dict, errors: list[dict]) -> bool:
    """Pydantic counts a collection's items after validating them: a wrong item also makes ``method`` "too short,
    not 0", the same mistake said twice."""
    loc = error["loc"]
    return error["type"] == "too_short" and any(len(other["loc"]) > len(loc) and other["loc"][:len(loc)] == loc
                                                for other in errors)


def _tuples(value: Any) -> Any:
    """TOML arrays as tuples: strict validation takes a tuple field only from a tuple (the models are frozen)."""
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _explain(error: dict) -> str:
    """Pydantic's message, with the value only where it cannot be a secret: a refused literal in a secret's
    place would otherwise be printed, password and all, into a CI log."""
    if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == SECRET_PATTERN:
        return "a literal value is not accepted here: write a reference, env:NAME or a Secrets Manager ARN"
    shown = error["type"] != "missing" and not isinstance(error["input"], (dict, str, list))
    return error["msg"] + (f" (got {error['input']!r})" if shown else "")
