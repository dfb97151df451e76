"""Errors gancore reports to people: each one says what is wrong and what to do."""

from __future__ import annotations


class GancoreError(Exception):
    """An error caused by the user's input (a recipe, data, a plugin); the CLI exits with status 2."""


class ConfigError(GancoreError):
    """One or more problems in a recipe or a component's parameters, each with its key path."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        if len(problems) == 1:
            text = f"{head}{problems[0]}"
        else:
            text = f"{head}{len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(text)


class UnknownComponentError(GancoreError):
    """No component of the requested kind has the requested name."""


class PluginError(GancoreError):
    """A plugin could not be loaded or registered."""


class DataError(GancoreError):
    """A data set could not be found or read."""
