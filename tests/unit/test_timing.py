"""The SYN schedule model against the catalogue's measured table (shared/book/EXPERIMENTS.md, entry 10)."""

import pytest

from lab.experiments.book.timing import syn_schedule


@pytest.mark.parametrize(("r", "lin", "times", "fail"), [
    (2, 0, [0, 1, 3], 7),
    (3, 0, [0, 1, 3, 7], 15),
    (2, 4, [0, 1, 2, 3, 4, 5], 7),
    (1, 1, [0, 1, 2], 4),
    (5, 0, [0, 1, 3, 7, 15, 31], 63),
    (6, 4, [0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67], 131),
])
def test_syn_schedule_matches_the_measured_table(r, lin, times, fail):
    got_times, got_fail = syn_schedule(r, lin)
    assert got_times == times
    assert got_fail == fail

