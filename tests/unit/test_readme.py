"""The README's snippets stay true: its policy example validates, and every command it shows exists."""

from __future__ import annotations

import re

from pipeline.cli import parser
from pipeline.policy import parse_policy
from pipeline.settings import Settings
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_the_readme_policy_example_validates():
    block = re.search(r"```yaml\n(.*?)```", README, re.S).group(1)
    loaded = parse_policy(block.encode(), "README.md")
    assert set(loaded.policy.datasets) == {"payments"}


def test_every_residency_command_in_the_readme_parses():
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", README, re.S))
    commands = [line.split("#")[0].strip() for line in re.findall(r"^residency .*$", shell, re.M)]
    assert commands
    for command in commands:
        for part in command.split("&&"):
            for single in part.split(";"):
                argv = single.split()[1:]
                argv = [a.strip('"') for a in argv]
                parser().parse_args(argv)  # raises SystemExit on an unknown command or option


def test_every_setting_the_readme_exports_is_a_real_setting():
    names = re.findall(r"\b(RESIDENCY_[A-Z_]+)=", README)
    fields = {f"RESIDENCY_{name.upper()}" for name in Settings.model_fields}
    assert names and set(names) <= fields
