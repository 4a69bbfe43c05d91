"""The host-command repository and instance keys, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from opendeploy.store import commands as c
from opendeploy.store.database import Store
from tests._stored import bare_deployment

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _deployment(store: Store, deployment_id: str = "d-AAAAAAAAA") -> str:
    return bare_deployment(store, deployment_id, now=T0)


def _register(store: Store, name: str) -> str:
    arn = f"arn:aws:codedeploy:us-east-1:000000000000:instance/{name}_x"
    store.instances.register(
        name=name,
        instance_arn=arn,
        iam_user_arn=f"arn:aws:iam::123456789012:user/{name}",
        iam_session_arn=None,
        now=T0,
    )
    return arn


def test_migration_head_has_host_commands(store: Store) -> None:
    with store.database.read() as conn:
        version: str = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version >= "0002"
        assert conn.execute(text("SELECT count(*) FROM host_commands")).scalar_one() == 0


def test_a_claim_says_whether_another_command_was_deliverable(store: Store) -> None:
    # A host in two deployment groups: one command of each deployment waits for it.
    dep, other = _deployment(store), _deployment(store, "d-BBBBBBBBB")
    with store.database.write() as conn:
        first = c.dispatch(conn, dep, "web-1", "ApplicationStop", T0)
        second = c.dispatch(conn, other, "web-1", "DownloadBundle", T0 + timedelta(seconds=1))
    claimed = store.commands.claim_next("web-1", now=T0 + timedelta(seconds=2))
    assert claimed is not None and claimed["command_id"] == first
    assert claimed["others_deliverable"] is True
    claimed = store.commands.claim_next("web-1", now=T0 + timedelta(seconds=2))
    assert claimed is not None and claimed["command_id"] == second
    assert claimed["others_deliverable"] is False


@pytest.mark.postgres
def test_a_claim_skips_a_command_another_transaction_holds(postgres_url: str) -> None:
    # Two polls of one host at once on PostgreSQL: the second must not wait for the first's
    # row, nor hand out the same command twice; it takes the next one.
    store = Store.open(postgres_url)
    try:
        dep, other = _deployment(store), _deployment(store, "d-BBBBBBBBB")
        with store.database.write() as conn:
            first = c.dispatch(conn, dep, "web-1", "ApplicationStop", T0)
            second = c.dispatch(conn, other, "web-1", "DownloadBundle", T0 + timedelta(seconds=1))
        with store.database.engine.connect() as holder, ThreadPoolExecutor(1) as pool:
            holder.execute(
                text("SELECT 1 FROM host_commands WHERE command_id = :c FOR UPDATE"), {"c": first}
            )
            later = T0 + timedelta(seconds=2)
            claiming = pool.submit(store.commands.claim_next, "web-1", now=later)
            try:
                # A claim that waited for the lock would give up here instead of hanging.
                claimed = claiming.result(timeout=10)
            finally:
                holder.rollback()
            assert claimed is not None and claimed["command_id"] == second
            assert claimed["others_deliverable"] is False  # the held one was not seen
        claimed = store.commands.claim_next("web-1", now=T0 + timedelta(seconds=2))
        assert claimed is not None and claimed["command_id"] == first
        assert store.commands.claim_next("web-1", now=T0 + timedelta(seconds=2)) is None
    finally:
        store.close()


def test_command_lifecycle(store: Store) -> None:
    dep = _deployment(store)
    with store.database.write() as conn:
        first = c.dispatch(conn, dep, "web-1", "ApplicationStop", T0)
    assert store.commands.claim_next("web-2", now=T0) is None
    claimed = store.commands.claim_next("web-1", now=T0)
    assert claimed is not None and claimed["command_id"] == first
    assert claimed["lifecycle_event"] == "ApplicationStop"
    assert claimed["others_deliverable"] is False  # it was the only one
    # Delivered once; handed out again only when the answer may have been lost.
    assert store.commands.claim_next("web-1", now=T0 + timedelta(seconds=1)) is None
    assert store.commands.claim_next("web-1", now=T0 + c.REDELIVER_AFTER * 2) is not None
    assert store.commands.acknowledge(first, now=T0, noop=True) == "InProgress"
    assert store.commands.acknowledge(first, now=T0, noop=True) == "InProgress"
    diag = {"errorCode": "Success", "message": "Succeeded", "scriptName": "", "logTail": ""}
    assert store.commands.complete(first, now=T0, result="Succeeded", diagnostics=diag)
    assert not store.commands.complete(first, now=T0, result="Failed", diagnostics=None)
    row = store.commands.get(first)
    assert row is not None
    assert (row["status"], row["result"], row["noop"]) == ("Succeeded", "Succeeded", True)
    assert row["diagnostics"] == diag
    with store.database.write() as conn:
        second = c.dispatch(conn, dep, "web-1", "DownloadBundle", T0)  # closes the first
    assert set(store.commands.open_commands(dep)) == {"web-1"}
    assert store.commands.open_commands(dep)["web-1"]["command_id"] == second
    assert store.commands.get(first)["status"] == "Closed"  # type: ignore[index]
    with store.database.write() as conn:
        c.close(conn, dep, ["web-1"], T0)
    assert store.commands.open_commands(dep) == {}
    # Reports about a closed command: skipped (Failed), completion ignored.
    assert store.commands.acknowledge(second, now=T0, noop=False) == "Failed"
    assert not store.commands.complete(second, now=T0, result="Succeeded", diagnostics=None)
    assert store.commands.acknowledge("hc-unknown", now=T0, noop=False) == "Failed"
    with pytest.raises(ValueError, match="CommandStatus"):
        store.commands.complete(second, now=T0, result="Pending", diagnostics=None)


def test_output_is_kept_bounded(store: Store) -> None:
    dep = _deployment(store)
    with store.database.write() as conn:
        command = c.dispatch(conn, dep, "web-1", "BeforeInstall", T0)
    line = "x" * 99 + "\n"
    for _ in range(c.OUTPUT_LIMIT_CHARS // 100 + 50):
        assert store.commands.append_output(command, line) == "Pending"
    out = store.commands.output(dep, "web-1")[0]["output"]
    assert len(out) <= c.OUTPUT_LIMIT_CHARS and out.endswith(line) and out.startswith("x")
    assert store.commands.append_output("hc-none", "x") is None


def test_instance_keys_are_revoked_by_deregistration(store: Store) -> None:
    arn = _register(store, "web-1")
    key, secret = store.access_keys.create(principal=arn, kind="instance")
    admin, admin_secret = store.access_keys.create(principal="admin", kind="admin")
    assert store.commands.lookup_secret(key) == secret
    assert store.commands.lookup_secret(admin) == admin_secret
    assert store.commands.lookup_secret("AKIANOPE") is None
    assert store.commands.key_kind(key) == "instance" and store.commands.key_kind(admin) == "admin"
    instance = store.commands.instance_for_key(key)
    assert instance is not None and instance["name"] == "web-1"
    assert store.commands.instance_for_key(admin) is None
    store.instances.deregister("web-1", now=T0)
    assert store.commands.lookup_secret(key) is None
    assert store.commands.instance_for_key(key) is None
    # Registering the name again gives a new ARN: the old key stays revoked.
    _register(store, "web-1")
    store.instances.deregister("web-1", now=T0)


def test_the_engine_reads_back_only_commands_whose_status_moved(store: Store) -> None:
    dep = _deployment(store)

    def changed() -> dict[str, str]:
        with store.database.read() as conn:
            return {n: r["status"] for n, r in c.changed_commands(conn, dep).items()}

    def seen(command_id: str, status: str) -> None:
        with store.database.write() as conn:
            c.mark_seen(conn, [(command_id, status)])

    with store.database.write() as conn:
        first = c.dispatch(conn, dep, "web-1", "ApplicationStop", T0)
        c.dispatch(conn, dep, "web-2", "ApplicationStop", T0)
    assert changed() == {}  # the engine made them: nothing it does not know
    claimed = store.commands.claim_next("web-1", now=T0)
    assert claimed is not None and changed() == {}  # a delivery is no news for the engine
    assert store.commands.acknowledge(first, now=T0, noop=False) == "InProgress"
    assert changed() == {"web-1": "InProgress"}
    assert changed() == {"web-1": "InProgress"}  # until the engine says it has seen it
    seen(first, "InProgress")
    assert changed() == {}
    # A completion that lands between the engine's read and its write is not lost: the status
    # the engine records as seen is the one it read, and the new one differs from it.
    assert store.commands.complete(first, now=T0, result="Failed", diagnostics=None)
    seen(first, "InProgress")
    assert changed() == {"web-1": "Failed"}
    with store.database.write() as conn:
        c.close(conn, dep, ["web-1"], T0)
    assert changed() == {}  # closed commands are done with
    # A row from before the column existed (NULL) counts as news.
    with store.database.write() as conn:
        conn.execute(text("UPDATE host_commands SET seen_status = NULL"))
    assert changed() == {"web-2": "Pending"}


def test_async_reports_give_the_same_answers(store: Store) -> None:
    import asyncio

    dep = _deployment(store)
    with store.database.write() as conn:
        first = c.dispatch(conn, dep, "web-1", "ApplicationStop", T0)
        other = c.dispatch(conn, dep, "web-2", "ApplicationStop", T0)

    async def reports() -> list[object]:
        commands = store.commands
        claimed = await commands.claim_expected_async("web-1", now=T0)
        assert claimed is not None and claimed["command_id"] == first
        return [
            await commands.acknowledge_async(first, now=T0, noop=False, owner="web-1"),
            await commands.acknowledge_async(other, now=T0, noop=False, owner="web-1"),
            await commands.complete_async(
                first, now=T0, result="Succeeded", diagnostics=None, owner="web-1"
            ),
            await commands.complete_async(
                first, now=T0, result="Succeeded", diagnostics=None, owner="web-1"
            ),
            await commands.complete_async(
                other, now=T0, result="Succeeded", diagnostics=None, owner="web-1"
            ),
            await commands.claim_expected_async("web-1", now=T0),
        ]

    # Another instance's command is unknown to this one (None); a repeated completion does not
    # count (False); nothing is left to claim.
    assert asyncio.run(reports()) == ["InProgress", None, True, False, None, None]
    row = store.commands.get(first)
    assert row is not None and row["status"] == "Succeeded"
    assert store.commands.get(other)["status"] == "Pending"  # type: ignore[index]
