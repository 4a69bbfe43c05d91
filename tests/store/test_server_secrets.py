"""Secrets shared by the replicas of one database: made once, the first insert wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from opendeploy.store.database import Store


def test_the_first_value_stored_is_everyones(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        secrets = store.server_secrets
        assert secrets.get("signer") is None
        made: list[str] = []

        def make(i: int) -> str:
            made.append(f"value-{i}")
            return f"value-{i}"

        with ThreadPoolExecutor(4) as pool:
            got = set(
                pool.map(lambda i: secrets.get_or_create("signer", lambda: make(i)), range(8))
            )
        assert len(got) == 1 and got <= set(made)
        assert secrets.get_or_create("signer", lambda: "never") == got.pop()
        secrets.replace("signer", "new")
        assert secrets.get("signer") == "new"
        secrets.replace("other", "made by replace")
        assert secrets.get("other") == "made by replace"
    finally:
        store.close()


def test_replicas_starting_on_a_new_database_share_one_admin_key(database_url: str) -> None:
    from opendeploy.server import _admin_key

    stores = [Store.open(database_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            keys = set(pool.map(_admin_key, stores))
        assert len(keys) == 1
        assert stores[0].access_keys.first("admin") == keys.pop()
    finally:
        for store in stores:
            store.close()
