"""The documentation: `mkdocs build --strict` passes without a warning, the README stays short and links every
page, the generated pages hold every key and every fault, and the bench scripts write their figures to the
performance page."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# bench/ is not a package (its scripts import each other by name): its module is loaded from its file, and bench/
# stays off sys.path, where its load.py or morning.py could shadow a module of the same name.
_spec = importlib.util.spec_from_file_location("performance_page", ROOT / "bench" / "performance_page.py")
performance_page = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(performance_page)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as CI builds it; any warning fails (strict, and no WARNING line at all)."""
    directory = tmp_path_factory.mktemp("site")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                            "--site-dir", str(directory)], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-5000:]
    assert not re.search(r"^(WARNING|ERROR)\b", output, re.M), output[-5000:]
    return directory


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))


def test_mkdocs_builds_strictly_every_page(site):
    pages = sorted(path.relative_to(DOCS).with_suffix("") for path in DOCS.rglob("*.md"))
    for page in pages:
        built = site / ("index.html" if page.name == "index" else page / "index.html")
        assert built.is_file(), page


def test_the_readme_is_short_and_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200, len(readme.splitlines())
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", readme))
    pages = {path.relative_to(ROOT).as_posix() for path in DOCS.rglob("*.md")}
    assert pages - linked == set(), f"pages the README does not link: {sorted(pages - linked)}"
    assert linked - pages == set(), f"links of the README to no page: {sorted(linked - pages)}"
    for target in re.findall(r"\]\(([^)#\s:]+)(?:#[^)]*)?\)", readme):
        assert (ROOT / target).exists(), target


def test_the_configuration_page_holds_every_key_of_every_section(site):
    from pydantic import BaseModel

    from entmoot_ops import config

    text = _text(site / "configuration" / "index.html")
    models = [config.Environment]
    while models:
        model = models.pop()
        for name, field in model.model_fields.items():
            assert name in text, f"{model.__name__}.{name}"
            for inner in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    models.append(inner)
    assert "[[hosts.postgres]]" in text and "[thresholds]" in text
    # A default and a comment taken from the source, as an example of each.
    assert "0.01" in text and 'Troubleshooting > High API Error Rate: "> 1%"' in text


def test_the_sandbox_page_lists_every_fault_with_its_parameters(site):
    from entmoot_ops.sandbox import faults

    text = _text(site / "sandbox" / "index.html")
    for name in faults.FAULTS:
        assert f" {name} " in text, name
        for parameter in faults.parameters(name):
            assert parameter in text, (name, parameter)
    assert f"The sandbox has {len(faults.FAULTS)} faults" in text


def test_the_words_speak_to_users():
    """No account of how the work went: the README and the pages speak to users and maintainers."""
    diary = re.compile(r"\b(fifth|fourth|third|second|first) stop\b|\bthis stop\b|this machine was slower|\bsession \d\b", re.I)
    for document in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        found = diary.findall(document.read_text(encoding="utf-8"))
        assert not found, (document.name, found)


def test_every_bench_script_that_records_has_its_section():
    page = DOCS / "performance.md"
    content = page.read_text(encoding="utf-8")
    for script in sorted((ROOT / "bench").glob("*.py")):
        for name in re.findall(r'recorded\("(\w+)"\)', script.read_text(encoding="utf-8")):
            assert name == script.stem, script.name
            assert f"<!-- bench:{name} -->" in content and f"<!-- /bench:{name} -->" in content, name


def test_a_bench_script_writes_its_section_only_when_it_succeeds(tmp_path, monkeypatch, capsys):
    page = tmp_path / "performance.md"
    page.write_text("before\n<!-- bench:demo -->\nold figures\n<!-- /bench:demo -->\nafter\n")
    monkeypatch.setattr(performance_page, "PAGE", page)
    monkeypatch.setattr(sys, "argv", ["bench/demo.py", "--runs", "3"])
    monkeypatch.delenv("ENTMOOT_BENCH_PAGE", raising=False)
    with pytest.raises(SystemExit), performance_page.recorded("demo"):
        print("a figure that failed")
        sys.exit(1)
    assert "old figures" in page.read_text()
    with performance_page.recorded("demo"):
        print("median 1.23 s")
    written = page.read_text()
    assert "old figures" not in written and "median 1.23 s" in written and written.startswith("before\n")
    assert written.endswith("<!-- /bench:demo -->\nafter\n")
    assert re.search(r"Written by `python bench/demo\.py --runs 3` on \d{4}-\d\d-\d\d \d\d:\d\d UTC, on .+ \(\d+ cores, .+Python 3", written)
    assert "median 1.23 s" in capsys.readouterr().out  # still printed
    monkeypatch.setenv("ENTMOOT_BENCH_PAGE", "off")
    with performance_page.recorded("demo"):
        print("not written")
    assert "not written" not in page.read_text()


def test_the_quick_tier_the_docs_name_collects_and_leaves_out_the_end_to_end_tests():
    """`pytest tests/ -m "not e2e"` (docs/tests.md): collected without a sandbox, and `-m e2e` holds the rest."""
    def collected(expression: str) -> set[str]:
        done = subprocess.run([sys.executable, "-m", "pytest", "tests/", "-m", expression, "--collect-only", "-q", "-p", "no:randomly"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return {line for line in done.stdout.splitlines() if "::" in line}

    quick, slow = collected("not e2e"), collected("e2e")
    assert quick and slow and not quick & slow
    assert {"test_chaos.py", "test_chaos_matrix.py", "test_load.py", "test_scaling_experiment.py"} <= \
        {line.split("::")[0].rsplit("/", 1)[-1] for line in slow}
    # A run of the checks against the sandbox is end to end wherever it is (the run_checks fixture).
    assert any(line.startswith("tests/test_morning.py::test_each_check_fails_on_its_fault") for line in slow)
