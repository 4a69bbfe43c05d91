"""What the engine needs from the outside, as protocols: its store, and the hosts' wake-ups.

The worker is a loop over :class:`EngineStore`: lease a deployment, load its snapshot, decide
(``reconcile``, pure), commit. The SQL implementation is ``store.engine_store.SqlEngineStore``;
nothing of the store's rows crosses into the engine but the typed snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from opendeploy.engine.reconcile import Decisions
from opendeploy.engine.snapshot import DeploymentSnapshot


class LoadedPass(Protocol):
    """A deployment as loaded for one pass: its snapshot, plus whatever the store keeps to
    commit the pass's decisions (opaque to the engine)."""

    @property
    def snapshot(self) -> DeploymentSnapshot: ...

    @property
    def instances_cached(self) -> bool:
        """Whether the agents' liveness in the snapshot comes from rows read in an earlier
        pass (the engine reloads before judging an agent unreachable on those)."""
        ...


@dataclass(frozen=True, slots=True)
class Committed:
    """What a committed pass did besides its decisions."""

    #: The rollback deployment created, if any.
    rollback_id: str | None = None
    #: Instances newly recorded as unreachable.
    marked_unreachable: tuple[str, ...] = ()
    #: Whether the pass created server steps (the effector runner has work).
    server_steps: bool = False


class EngineStore(Protocol):
    """The engine's persistence: leases, snapshots, and the one transaction of each pass."""

    def candidates(self, now: datetime) -> list[str]:
        """Active deployments this worker may lease now, oldest first."""
        ...

    def lease(self, deployment_id: str, now: datetime) -> bool:
        """Take the deployment's lease; False if another worker holds it or it ended."""
        ...

    def load(
        self,
        deployment_id: str,
        now: datetime,
        *,
        watching_since: datetime | None,
        holding: frozenset[str],
        heard: Mapping[str, datetime] | None,
        fresh_instances: bool = False,
    ) -> LoadedPass | None:
        """The deployment under the lease (None if it is gone)."""
        ...

    def commit(
        self,
        deployment_id: str,
        loaded: LoadedPass | None,
        decisions: Decisions | None,
        now: datetime,
        *,
        dead_after_seconds: float,
    ) -> Committed | None:
        """Apply ``decisions`` (if any) and release the lease, in one transaction; None, with
        nothing written, when the lease was lost meanwhile."""
        ...

    def release(self, deployment_id: str) -> None:
        """Give the lease up without writing (after a failed pass)."""
        ...

    def forget(self, keep: set[str]) -> None:
        """Drop what is kept between passes for deployments not in ``keep``."""
        ...
