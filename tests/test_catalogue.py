"""The generated reference pages (`gancore docs`): current, faithful to the registry and the recipes, and buildable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic.fields import FieldInfo

from gancore import cli
from gancore.catalogue import reference_pages
from gancore.recipe import SECTIONS, Recipe, json_schema
from gancore.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
SYMBOLS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """The pages as `gancore docs` would write them now."""
    return reference_pages(default_registry(), ROOT / "recipes")


def section(page: str, heading: str) -> str:
    """The text of a page from a heading line to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = page.index(f"\n{heading}\n")
    ends = [m.start() for m in re.finditer(rf"\n#{{1,{len(level)}}} ", page) if m.start() > start]
    return page[start:ends[0] if ends else len(page)]


def row(text: str, name: str) -> list[str]:
    """The cells of the table row of key ``name`` (escaped pipes stay inside their cell)."""
    found = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(found) == 1, f"{name}: {found}"
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", found[0])[1:-1]]


def model_bounds(field: FieldInfo) -> set[str]:
    """The bounds a pydantic field declares (Field(ge=...), Annotated[..., within(...)]) as the page writes them."""
    return {f"{SYMBOLS[attr]} {getattr(item, attr):g}" for item in field.metadata for attr in SYMBOLS
            if getattr(item, attr, None) is not None}


def test_checked_in_pages_are_current(pages: dict[str, str]) -> None:
    for name, text in pages.items():
        assert (REFERENCE / name).read_text(encoding="utf-8") == text, \
            f"docs/reference/{name} is out of date; run `gancore docs` and commit it"


@pytest.mark.parametrize(("kind", "name", "param", "kind_text"), [
    ("generator", "r3gan", "resolution", "integer"),
    ("generator", "mlp", "depth", "integer"),
    ("regularizer", "r1", "gamma", r"number \| [Schedule](recipes.md#schedule)"),
    ("augmenter", "ada", "target", r"number \| null"),
])
def test_parameter_rows_follow_the_model(pages: dict[str, str], kind: str, name: str, param: str,
                                         kind_text: str) -> None:
    field = default_registry().get(kind, name).params.model_fields[param]
    cells = row(section(pages["components.md"], f"### {kind}: `{name}`"), param)
    assert cells[1] == kind_text
    assert cells[2] == f"`{json.dumps(field.default)}`"
    assert set(cells[3].split(", ")) == model_bounds(field)
    assert cells[4] == (field.description or "").replace("|", r"\|")


def test_required_parameter_and_component_without_parameters(pages: dict[str, str]) -> None:
    catalogue = pages["components.md"]
    assert "No parameters." in section(catalogue, "### loss: `hinge`")
    assert row(section(pages["recipes.md"], "## TrainConfig"), "batch_size")[2:4] == ["required", "> 0"]


def test_every_component_lists_exactly_the_recipes_that_use_it(pages: dict[str, str]) -> None:
    uses: dict[tuple[str, str], set[str]] = {}
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        for key, kind in SECTIONS.items():
            entries = raw.get(key) or []
            for entry in entries if isinstance(entries, list) else [entries]:
                uses.setdefault((kind, entry["name"]), set()).add(f"`recipes/{path.name}`")
    assert ("generator", "r3gan") in uses and ("regularizer", "spectral_norm") in uses
    for spec in default_registry().list():
        text = section(pages["components.md"], f"### {spec.kind}: `{spec.name}`")
        used = uses.get((spec.kind, spec.name))
        expected = f"Used by {', '.join(sorted(used))}." if used else "Used by no recipe."
        assert f"\n{expected}\n" in text, (spec.kind, spec.name)
    assert "`recipes/r3gan_cifar10.yaml`" in section(pages["components.md"], "### augmenter: `ada`")


def test_every_component_names_the_parameters_the_conformance_kit_checks(pages: dict[str, str]) -> None:
    for spec in default_registry().list():
        text = section(pages["components.md"], f"### {spec.kind}: `{spec.name}`").rstrip()
        if spec.examples:
            assert all(f"`{json.dumps(e)}`" in text for e in spec.examples), (spec.kind, spec.name)
        else:
            assert text.endswith("with its defaults."), (spec.kind, spec.name)


def test_recipe_reference_lists_every_key_and_links_the_catalogue(pages: dict[str, str]) -> None:
    recipes, catalogue = pages["recipes.md"], pages["components.md"]
    top = section(recipes, "## Recipe")
    for key in json_schema(default_registry())["properties"]:
        row(top, key)
    for key in Recipe.model_fields["train"].annotation.model_fields:  # type: ignore[union-attr]
        row(section(recipes, "## TrainConfig"), key)
    for key, kind in SECTIONS.items():
        anchor = re.search(r"\(components\.md#(\w+)\)", row(top, key)[4])
        assert anchor, key
        assert f"\n## {anchor.group(1).capitalize()}\n" in catalogue
        assert f"### {kind}: `" in section(catalogue, f"## {anchor.group(1).capitalize()}")
    assert recipes.count("\n| Name | Type |") == recipes.count("\n## "), "one table per model, none per component"


def test_check_names_stale_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "reference"
    assert cli.main(["docs", "--out", str(out), "--check"]) == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert f"{out / 'components.md'} is out of date; run `gancore docs --out {out}`" in err
    assert f"{out / 'recipes.md'} is out of date" in err

    assert cli.main(["docs", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["docs", "--out", str(out), "--check"]) == 0
    assert capsys.readouterr().err == ""

    (out / "components.md").write_text((out / "components.md").read_text() + "edited\n")
    assert cli.main(["docs", "--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert "components.md is out of date" in err and "recipes.md" not in err


def test_docs_outside_the_repository_says_where_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["docs", "--check"]) == 2
    assert "run `gancore docs` from the repository root" in capsys.readouterr().err


def test_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "reference" / "components.html").is_file()
