"""The engine allows for its own server's backlog before it calls an agent dead."""

from __future__ import annotations

from pathlib import Path

from opendeploy.engine.dispatch import HostNotifier
from opendeploy.engine.worker import EngineWorker
from opendeploy.settings import ServerSettings
from opendeploy.store.database import Store


def _worker(tmp_path: Path, behind: list[float]) -> EngineWorker:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = ServerSettings(
        data_dir=tmp_path / "data", database_url=url, agent_dead_after_seconds=15.0
    )
    store = Store.open(url)
    return EngineWorker(store, settings, notifier=HostNotifier(), backlog=lambda: behind[0])


def test_the_dead_agent_window_grows_by_the_backlog(tmp_path: Path) -> None:
    behind = [0.0]
    worker = _worker(tmp_path, behind)
    try:
        assert worker._settings_now().agent_dead_after_seconds == 15.0
        behind[0] = 42.5
        assert worker._settings_now().agent_dead_after_seconds == 57.5
        # Nothing else moves with it.
        assert worker._settings_now().event_timeout_seconds == (
            worker.engine_settings.event_timeout_seconds
        )
        behind[0] = 0.0
        assert worker._settings_now() is worker.engine_settings
    finally:
        worker.store.close()


def test_an_agent_heard_by_this_process_is_alive_whatever_the_store_says(tmp_path: Path) -> None:
    """The batched ``last_seen_at`` may lag far behind under load; what the Command API of this
    process heard is newer and counts."""
    from datetime import UTC, datetime, timedelta

    from opendeploy.store.engine_store import load
    from tests._stored import deployment_to_instances

    now = datetime.now(UTC)
    long_ago = now - timedelta(minutes=5)
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        dep = deployment_to_instances(store, ["heard", "quiet"], now=now, last_seen=long_ago)
        with store.database.read() as conn:
            loaded = load(conn, dep, now, heard={"heard": now})
        assert loaded is not None
        seen = {t.instance_id: t.last_seen_at for t in loaded.snapshot.targets}
        assert seen == {"heard": now, "quiet": long_ago}
    finally:
        store.close()


def test_the_restart_grace_setting_reaches_the_engine(tmp_path: Path) -> None:
    from opendeploy.engine.worker import engine_settings

    settings = ServerSettings(
        data_dir=tmp_path, database_url="sqlite://", restart_grace_seconds=7.0
    )
    assert engine_settings(settings).restart_grace_seconds == 7.0
    default = ServerSettings(data_dir=tmp_path, database_url="sqlite://")
    assert engine_settings(default).restart_grace_seconds == 95.0
