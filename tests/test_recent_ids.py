"""A set that keeps only its latest members."""

from realtime_trio._recent_ids import RecentIds


def test_the_oldest_member_goes_first_beyond_the_bound() -> None:
    ids = RecentIds(3)
    for value in ["a", "b", "c", "b", "d"]:
        ids.add(value)

    assert list(ids) == ["b", "c", "d"]  # "b" again keeps its place; "a" was the oldest
    assert "a" not in ids
    assert len(ids) == 3
