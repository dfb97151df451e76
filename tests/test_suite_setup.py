"""The test suite's own set-up: what ``make test`` relies on beyond the code under test."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("suite_setup")
def test_xdist_groups_reach_the_scheduler(request: pytest.FixtureRequest) -> None:
    """``--dist loadgroup`` keeps each ``xdist_group`` on one worker only if pytest-xdist can tag the node id;
    pytest 9.2 stopped that (node ids moved to ``Node._id``), which split every group: the weights files and
    the example plugin's wheel were then built once per worker. constraints.txt pins a pytest where it holds."""
    if not getattr(request.config.option, "loadgroup", False):  # set on each worker of `--dist loadgroup`
        pytest.skip("only meaningful under `pytest -n 2 --dist loadgroup`, as `make test` runs it")
    assert request.node.nodeid.endswith("@suite_setup"), (
        f"pytest-xdist did not tag {request.node.nodeid!r} with its group; pin pytest as constraints.txt says")
