"""The test suite's own set-up: what ``make test`` relies on beyond the code under test."""

from __future__ import annotations

import pytest


def test_xdist_groups_stay_on_one_worker(pytester: pytest.Pytester) -> None:
    """``make test`` runs ``--dist loadgroup`` so that each ``xdist_group`` (the weights files, the example
    plugin's wheel) is built on one worker. pytest 9.2 broke that silently with pytest-xdist 3.8 (node ids moved
    to ``Node._id``, so groups were split); constraints.txt pins a pytest where the groups hold."""
    pytester.makepyfile(test_grouped="""
        import pytest
        @pytest.mark.xdist_group("together")
        @pytest.mark.parametrize("i", range(6))
        def test_member(i):
            pass
    """)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:gancore", "-v")
    result.assert_outcomes(passed=6)
    workers = {line.split()[0] for line in result.outlines if "PASSED" in line and line.startswith("[gw")}
    assert len(workers) == 1, f"the group ran on {sorted(workers)}; pin pytest as constraints.txt says"
