"""The docs keep up with the code: every setting, command, error code and link is documented.

Datasette's habit: a setting or a command added without its documentation fails the suite.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from contacthub.cli.main import app
from contacthub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
# Email marketing documents its own error codes in docs/email.md.
CODES_DOCUMENTED_ELSEWHERE = ("contacthub/email/", "contacthub/cli/email.py")


def all_docs() -> str:
    """README.md and every page under docs/, as one text."""
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def cli_commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[str]:
    """The full name of every runnable command, e.g. `apikey create`, walking the Typer app."""
    if command is None:
        command = typer.main.get_command(app)
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield " ".join(path)
        return
    for name, subcommand in subcommands.items():
        yield from cli_commands(subcommand, (*path, name))


def documented_error_codes() -> set[str]:
    """Every literal error code the hub can answer with (outside email marketing)."""
    codes: set[str] = set()
    for source in sorted((ROOT / "contacthub").rglob("*.py")):
        relative = source.relative_to(ROOT).as_posix()
        if relative.startswith(CODES_DOCUMENTED_ELSEWHERE):
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        codes.add(str(keyword.value.value))
                # ActivityRejection(status, error, code): a failed activity's code.
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                arguments = node.args
                if (
                    name == "ActivityRejection"
                    and len(arguments) == 3
                    and isinstance(arguments[2], ast.Constant)
                ):
                    codes.add(str(arguments[2].value))
            elif isinstance(node, ast.Dict):
                # Error bodies written out as literals: {"error": ..., "code": "..."}.
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "code"
                        and isinstance(value, ast.Constant)
                    ):
                        codes.add(str(value.value))
            elif isinstance(node, ast.Assign) and relative == "contacthub/errors.py":
                # The default code of each HubError class.
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if names == ["code"] and isinstance(node.value, ast.Constant):
                    codes.add(str(node.value.value))
    return codes


def test_the_walk_finds_commands() -> None:
    # Guard against a walk that silently finds nothing (and so checks nothing).
    commands = set(cli_commands())
    assert {"serve", "migrate", "channel create", "apikey create"} <= commands


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert f"`{name}`" in text, f"setting {name!r} is missing from docs/configuration.md"
    env = f"CONTACTHUB_{name.upper()}"
    assert env in text, f"environment variable {env} is missing from docs/configuration.md"


def test_every_setting_is_documented_once() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE)
    repeated = sorted({name for name in rows if rows.count(name) > 1})
    assert not repeated, f"settings with two rows (which one is true?): {repeated}"


def test_configuration_documents_no_removed_setting() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))
    assert documented, "docs/configuration.md has no settings table"
    assert documented <= set(Settings.model_fields), "documented settings that do not exist"


@pytest.mark.parametrize("command", sorted(cli_commands()))
def test_every_command_is_documented(command: str) -> None:
    pattern = r"contacthub\s+" + r"\s+".join(map(re.escape, command.split())) + r"(?![\w-])"
    assert re.search(pattern, all_docs()), (
        f"`contacthub {command}` is in the CLI but not in README.md or docs/*.md"
    )


@pytest.mark.parametrize("code", sorted(documented_error_codes()))
def test_every_error_code_is_documented(code: str) -> None:
    assert f"`{code}`" in all_docs(), f"error code {code!r} is not documented under docs/"


def anchors(page: Path) -> set[str]:
    """The `#fragment` of every heading of a Markdown page, as GitHub makes them."""
    found: set[str] = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        number = 0
        candidate = slug
        while candidate in found:  # a repeated heading gets -1, -2, ...
            number += 1
            candidate = f"{slug}-{number}"
        found.add(candidate)
    return found


def test_relative_links_resolve() -> None:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target, fragment in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            linked = (page.parent / target) if target else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)} -> {target}#{fragment}")
    assert not broken, f"broken links: {broken}"


def test_the_readme_lists_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    missing = [
        page.name for page in sorted(DOCS.glob("*.md")) if f"](docs/{page.name})" not in listed
    ]
    assert not missing, f"docs pages not in the README's Documentation list: {missing}"


def test_readme_and_scripts_give_the_same_demo_time() -> None:
    said = {
        name: set(
            re.findall(r"about (\d+|an?)\s+(?:#\s*)?(second|minute)", (ROOT / name).read_text())
        )
        for name in ("README.md", "scripts/serve")
    }
    assert said["README.md"], "README.md no longer says how long the demo takes"
    assert said["README.md"] == said["scripts/serve"], said
