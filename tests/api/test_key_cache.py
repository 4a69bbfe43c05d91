"""SecretCache: found secrets are remembered for a moment; unknown keys never are."""

from __future__ import annotations

from opendeploy.api.key_cache import KeyKindCache, SecretCache


class Store:
    def __init__(self) -> None:
        self.secrets: dict[str, str] = {"AKID1": "s1"}
        self.asked: list[str] = []

    def lookup(self, key: str) -> str | None:
        self.asked.append(key)
        return self.secrets.get(key)


def test_a_found_secret_is_reused_until_it_expires() -> None:
    store, now = Store(), [100.0]
    cache = SecretCache(store.lookup, ttl=2.0, clock=lambda: now[0])
    assert cache("AKID1") == "s1"
    now[0] = 101.9
    assert cache("AKID1") == "s1"
    assert store.asked == ["AKID1"]
    del store.secrets["AKID1"]  # e.g. its instance deregistered by another replica
    now[0] = 102.0
    assert cache("AKID1") is None
    assert store.asked == ["AKID1", "AKID1"]


def test_unknown_keys_are_asked_every_time_so_a_new_key_works_at_once() -> None:
    store = Store()
    cache = SecretCache(store.lookup, clock=lambda: 0.0)
    assert cache("AKID2") is None
    store.secrets["AKID2"] = "s2"
    assert cache("AKID2") == "s2"
    assert store.asked == ["AKID2", "AKID2"]


def test_forget_all_asks_the_store_again() -> None:
    store = Store()
    cache = SecretCache(store.lookup, clock=lambda: 0.0)
    cache("AKID1")
    cache.forget_all()
    del store.secrets["AKID1"]
    assert cache("AKID1") is None


def test_the_cache_stays_bounded() -> None:
    store, now = Store(), [0.0]
    store.secrets.update({f"K{i}": f"s{i}" for i in range(10)})
    cache = SecretCache(store.lookup, ttl=1.0, max_entries=4, clock=lambda: now[0])
    for i in range(10):
        now[0] = i * 0.1
        assert cache(f"K{i}") == f"s{i}"
        assert len(cache._found) <= 4


def test_a_key_kind_is_asked_once_and_an_unknown_key_every_time() -> None:
    asked: list[str] = []
    kinds = {"AKADMIN": "admin"}

    def lookup(key: str) -> str | None:
        asked.append(key)
        return kinds.get(key)

    cache = KeyKindCache(lookup, max_entries=2)
    assert [cache("AKADMIN"), cache("AKADMIN")] == ["admin", "admin"]
    assert cache("AKNEW") is None
    kinds["AKNEW"] = "instance"  # issued since: found at once
    assert [cache("AKNEW"), cache("AKNEW")] == ["instance", "instance"]
    assert asked == ["AKADMIN", "AKNEW", "AKNEW"]
    cache("AKTHIRD")  # unknown: not remembered, nothing dropped
    kinds["AKTHIRD"] = "admin"
    assert cache("AKTHIRD") == "admin"  # a third entry: the full cache starts again
    assert cache("AKADMIN") == "admin" and asked[-1] == "AKADMIN"
