"""`STORE_URL`: the forms the issue names, and a password that never shows."""

from __future__ import annotations

import pytest

from realtime_trio._store_url import StoreURL, StoreURLError, parse_store_url


@pytest.mark.parametrize("text", ["memory://", "", "  memory://  "])
def test_memory_is_this_process_alone(text: str) -> None:
    assert parse_store_url(text) == StoreURL(kind="memory")
    assert parse_store_url(text).shared is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("valkey://cache:6380/2", StoreURL("valkey", "cache", 6380, 2)),
        ("valkey://cache", StoreURL("valkey", "cache", 6379, 0)),
        ("redis://cache:6379", StoreURL("valkey", "cache", 6379, 0)),
        ("valkeys://cache:6380", StoreURL("valkey", "cache", 6380, 0, tls=True)),
        ("rediss://cache", StoreURL("valkey", "cache", 6379, 0, tls=True)),
        (
            "valkey://app:s%40cret@cache:6379/1",
            StoreURL("valkey", "cache", 6379, 1, username="app", password="s@cret"),
        ),
        ("valkey://:pw@cache", StoreURL("valkey", "cache", 6379, 0, password="pw")),
    ],
)
def test_valkey_and_redis_urls(text: str, expected: StoreURL) -> None:
    assert parse_store_url(text) == expected


def test_the_password_is_never_shown() -> None:
    url = parse_store_url("valkeys://app:hunter2-secret@cache:6380/3")

    assert url.redacted() == "valkeys://app:***@cache:6380/3"
    assert "hunter2" not in repr(url)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ftp://user:hunter2-secret@cache", "must be memory://"),
        ("valkey://", "names no host"),
        ("valkey://user:hunter2-secret@cache:99999", "port"),
        ("valkey://user:hunter2-secret@cache/zero", "database"),
    ],
)
def test_a_bad_url_is_named_without_its_password(text: str, says: str) -> None:
    with pytest.raises(StoreURLError, match=says) as raised:
        parse_store_url(text)

    assert "hunter2" not in str(raised.value)
