"""MkDocs hook: the pages that are generated from the code, so that they cannot drift from it.

A page asks for a generated part with a marker on a line of its own:

- ``<!-- generated: configuration -->``: every section and key of the environment file, from the pydantic models of
  ``entmoot_ops.config`` (type, default, and the comment the source gives the key);
- ``<!-- generated: faults -->``: every fault of the sandbox, from its registry ``entmoot_ops.sandbox.faults.FAULTS``
  (name, docstring, parameters with their types and defaults).

The code documented is the checkout's (``src/`` first on the path), whatever is installed. Importing the fault
registry imports moto: a build needs the ``sandbox`` extra, which the ``test`` extra holds.
"""

from __future__ import annotations

import inspect
import io
import json
import re
import sys
import tokenize
import types
import typing
from datetime import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' hook signature
    return MARKER.sub(lambda match: GENERATORS[match.group(1)](), markdown)


def _import(module: str):
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    __import__(module)
    return sys.modules[module]


# --- configuration -------------------------------------------------------------------------------------------------

def _comments(path: Path) -> dict[tuple[str, str], str]:
    """(class, field) -> the comment the source gives the field: the comment lines just above it and the comment at
    the end of its line."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    found: dict[tuple[str, str], str] = {}
    current = None
    for number, line in enumerate(lines, start=1):
        if match := re.match(r"class (\w+)\(", line):
            current = match.group(1)
            continue
        match = re.match(r"    (\w+): ", line)
        if not current or not match:
            continue
        above, previous = [], number - 1
        while previous in comments and lines[previous - 1].strip().startswith("#"):
            above.insert(0, comments[previous])
            previous -= 1
        # A field's own line comment; a continuation line's (a long default) counts too.
        end = number
        while end < len(lines) and lines[end].startswith("        ") and not lines[end].strip().startswith("#"):
            end += 1
        trailing = [comments[n] for n in range(number, end + 1) if n in comments and not lines[n - 1].strip().startswith("#")]
        text = " ".join(part for part in [*above, *trailing] if not part.startswith("type: ignore") and not part.startswith("noqa"))
        found[(current, match.group(1))] = re.sub(r"\s*type: ignore\[[\w-]+\]", "", text).strip()
    return found


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return "unset" if value is None else f"`{_toml(value)}`"


def _toml(value) -> str:
    """A default as it would be written in the environment file."""
    from pydantic import BaseModel

    if value is None:
        return "(none)"
    if isinstance(value, BaseModel):
        return "(its section's defaults)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k) if not re.fullmatch(r'[A-Za-z0-9_-]+', k) else k} = {_toml(v)}"
                                for k, v in value.items()) + " }" if value else "{}"
    return str(value)


def _constraints(metadata) -> str:
    config = _import("entmoot_ops.config")
    said = []
    for item in metadata:
        for attribute, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if getattr(item, attribute, None) is not None:
                said.append(f"{sign} {getattr(item, attribute):g}")
        for nested in getattr(item, "metadata", ()):  # a Field(...) inside Annotated
            said.append(_constraints([nested]).strip(" ()"))
        pattern = getattr(item, "pattern", None)
        if pattern == config.SECRET_PATTERN:
            said.append("a reference: env:NAME or a Secrets Manager ARN")
        elif pattern and "env:" in pattern:
            said.append("a path: absolute, ~/..., or env:NAME")
        elif pattern:
            said.append(f"matching `{pattern}`")
        if getattr(item, "min_length", None):
            said.append(f"at least {item.min_length} character")
        function = getattr(getattr(item, "func", None), "__name__", "")
        said.append({"_endpoint": "a URL or env:NAME", "_host_url": "a testinfra host URL (ssh://, local://, docker://...)",
                     "_http_url": "an http(s) URL", "_patterns": "names: lowercase, digits and -; values: regular expressions"
                     }.get(function, ""))
    said = [s for s in said if s]
    return f" ({', '.join(said)})" if said else ""


def _type(annotation) -> str:
    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0]) + _constraints(args[1:])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(arg) for arg in args if arg is not type(None)) + (" or none" if type(None) in args else "")
    if origin is typing.Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {_type(args[0])}"
        return "[" + ", ".join(_type(arg) for arg in args) + "]"
    if origin is dict:
        return f"table of {_type(args[0])} = {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean", time: "time (HH:MM)"}.get(annotation, str(annotation))


def _model_of(annotation):
    """The model a field holds (a section, or an array of tables), and whether it is an array."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0], True
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            model, array = _model_of(arg)
            if model is not None:
                return model, array
    return None, False


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(model, heading: str, comments, out: list[str], required: bool, comment: str) -> None:
    rows, nested = [], []
    for name, field in model.model_fields.items():
        inner, array = _model_of(field.annotation)
        if inner is not None:
            nested.append((name, field, inner, array))
            continue
        annotation = field.annotation
        if field.metadata:
            annotation = typing.Annotated[(annotation, *field.metadata)]
        default = _default(field)
        described = comments.get((model.__name__, name), "")
        rows.append(f"| `{name}` | {_cell(_type(annotation))} | {_cell(default)} | {_cell(described)} |")
    out.append(f"### `{heading}`\n")
    own = inspect.cleandoc(model.__doc__) if "__doc__" in vars(model) and model.__doc__ else ""
    intro = " ".join(part for part in (own, comment, "Required." if required else "") if part)
    if intro:
        out.append(intro.replace("\n", " ") + "\n")
    if rows:
        out += ["| key | type | default | what |", "| --- | --- | --- | --- |", *rows, ""]
    for name, field, inner, array in nested:
        child = f"[{heading.strip('[]')}.{name}]" if not array else f"[[{heading.strip('[]')}.{name}]]"
        _section(inner, child, comments, out, field.is_required(), comments.get((model.__name__, name), ""))


def configuration() -> str:
    config = _import("entmoot_ops.config")
    comments = {key: text for path in sorted(Path(config.__file__).parent.glob("*.py")) for key, text in _comments(path).items()}
    out = ["| key | type | default | what |", "| --- | --- | --- | --- |"]
    sections = []
    for name, field in config.Environment.model_fields.items():
        inner, array = _model_of(field.annotation)
        if inner is not None:
            sections.append((name, field, inner, array))
            continue
        default = _default(field)
        if name == "name":
            default = "the file's name"
        out.append(f"| `{name}` | {_cell(_type(field.annotation))} | {_cell(default)} | {_cell(comments.get(('Environment', name), ''))} |")
    out.append("")
    for name, field, inner, _ in sections:
        _section(inner, f"[{name}]", comments, out, field.is_required(), comments.get(("Environment", name), ""))
    return "\n".join(out)


# --- the sandbox's faults ------------------------------------------------------------------------------------------

def faults() -> str:
    module = _import("entmoot_ops.sandbox.faults")
    out = [f"The sandbox has {len(module.FAULTS)} faults. `entmoot-ops sandbox fault inject NAME KEY=VALUE ...` injects one "
           "(values are read as JSON, else as text); `entmoot-ops sandbox fault list` lists them with their parameters.", ""]
    for name in sorted(module.FAULTS):
        function = module.FAULTS[name]
        hints = module.parameter_types(name)
        out.append(f"### `{name}`\n")
        out.append(inspect.cleandoc(function.__doc__ or "").replace("\n", " ") + "\n")
        parameters = module.parameters(name)
        if parameters:
            out += ["| parameter | type | default |", "| --- | --- | --- |"]
            out += [f"| `{key}` | {_cell(_type(hints[key]))} | `{_cell(_toml(default))}` |" for key, default in parameters.items()]
            out.append("")
        else:
            out.append("No parameters.\n")
    return "\n".join(out)


GENERATORS = {"configuration": configuration, "faults": faults}
