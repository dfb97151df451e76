"""The kit's machinery: named contract clauses, run once or as hypothesis properties that shrink failures."""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gancore.errors import GancoreError


class ConformanceError(AssertionError):
    """A component broke a clause of its kind's contract; the message names the clause and the smallest
    failing example that hypothesis found."""

    def __init__(self, component: str, clause: str, detail: str, example: dict[str, Any] | None = None) -> None:
        self.component, self.clause, self.detail, self.example = component, clause, detail, example
        text = f"{component} breaks the contract clause: {clause}\n  {detail}"
        if example is not None:
            text += "\n  smallest failing example: " + ", ".join(f"{k}={v!r}" for k, v in example.items())
        super().__init__(text)


class NotCheckable(GancoreError):
    """The kit cannot build or exercise the component without more input (a required parameter, a weights
    file, a data set); the message says what to pass."""


@dataclass
class Report:
    """What one run of the kit checked: the component, the parameters it was built with, the clauses."""

    component: str
    params: dict[str, Any]
    clauses: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.component} {self.params}: {len(self.clauses)} clauses hold"
        return text + "".join(f"; {note}" for note in self.notes)


class Checker:
    """Runs the clauses of one component, records those that hold and raises on the first that breaks."""

    def __init__(self, report: Report, max_examples: int, prefix: str = "") -> None:
        self.report = report
        self.max_examples = max_examples
        self.prefix = prefix

    def variant(self, params: dict[str, Any]) -> Checker:
        """The checker of the same component built with other parameters, whose clauses say which."""
        changed = {k: v for k, v in params.items() if self.report.params.get(k, ...) != v}
        prefix = "".join(f"[{k}={v!r}] " for k, v in changed.items())
        return Checker(self.report, self.max_examples, prefix)

    @contextlib.contextmanager
    def clause(self, text: str) -> Iterator[None]:
        """A clause checked once: any exception inside it breaks the clause."""
        text, start = self.prefix + text, time.perf_counter()
        try:
            yield
        except ConformanceError:
            raise
        except NotCheckable:
            raise
        except Exception as exc:  # the component's own code may raise anything; that breaks the clause
            raise ConformanceError(self.report.component, text, _describe(exc)) from exc
        self._holds(text, start)

    def holds(self, text: str, test: Callable[..., None], max_examples: int | None = None,
              **strategies: st.SearchStrategy[Any]) -> None:
        """A clause that holds for every input hypothesis draws from ``strategies``; a failure is shrunk to the
        smallest example, which the error quotes."""
        text, start = self.prefix + text, time.perf_counter()
        last: dict[str, Any] = {}

        def run(**example: Any) -> None:
            last.clear()
            last.update(example)
            test(**example)

        budget = max_examples if max_examples is not None else self.max_examples
        # no "explain" phase: it reruns a failure hundreds of times for a report the kit does not print
        runner = settings(max_examples=budget, deadline=None, database=None, derandomize=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                          suppress_health_check=list(HealthCheck), print_blob=False)(given(**strategies)(run))
        try:
            runner()
        except ConformanceError:
            raise
        except Exception as exc:  # hypothesis re-raises the failure of the smallest example, run last
            raise ConformanceError(self.report.component, text, _describe(exc), dict(last)) from exc
        self._holds(text, start)

    def _holds(self, text: str, start: float) -> None:
        self.report.clauses.append(text)
        self.report.seconds.append(time.perf_counter() - start)

    def note(self, text: str) -> None:
        """Something the kit did not check, and why (an unconditional-only network, a declared dependence)."""
        self.report.notes.append(text)


def expect(condition: bool, message: str) -> None:
    """An assertion that survives ``python -O``: the kit must not pass because asserts were stripped."""
    if not condition:
        raise AssertionError(message)


def _describe(exc: BaseException) -> str:
    """One line for an assertion; the exception type, message and innermost frame for anything else."""
    if type(exc) is AssertionError:
        return str(exc) or "assertion failed"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
