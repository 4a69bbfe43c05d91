"""Lifecycle events: their AWS names, their order, and who runs each one."""

from __future__ import annotations

import enum


class LifecycleEvent(enum.StrEnum):
    """The lifecycle events of an EC2/on-premises deployment, named as AWS names them."""

    BEFORE_BLOCK_TRAFFIC = "BeforeBlockTraffic"
    BLOCK_TRAFFIC = "BlockTraffic"
    AFTER_BLOCK_TRAFFIC = "AfterBlockTraffic"
    APPLICATION_STOP = "ApplicationStop"
    DOWNLOAD_BUNDLE = "DownloadBundle"
    BEFORE_INSTALL = "BeforeInstall"
    INSTALL = "Install"
    AFTER_INSTALL = "AfterInstall"
    APPLICATION_START = "ApplicationStart"
    VALIDATE_SERVICE = "ValidateService"
    BEFORE_ALLOW_TRAFFIC = "BeforeAllowTraffic"
    ALLOW_TRAFFIC = "AllowTraffic"
    AFTER_ALLOW_TRAFFIC = "AfterAllowTraffic"


E = LifecycleEvent

#: The full server-side order of an in-place EC2/on-premises deployment (AWS documentation).
SERVER_ORDER: tuple[LifecycleEvent, ...] = tuple(LifecycleEvent)

#: Events the server itself performs (load balancer); never sent to an agent.
SERVER_SIDE_EVENTS: frozenset[LifecycleEvent] = frozenset({E.BLOCK_TRAFFIC, E.ALLOW_TRAFFIC})

#: Events the agent carries out itself rather than by running scripts.
AGENT_BUILTIN_EVENTS: frozenset[LifecycleEvent] = frozenset({E.DOWNLOAD_BUNDLE, E.INSTALL})

#: Hook events whose scripts come from the last successful revision on the host.
PREVIOUS_REVISION_EVENTS: frozenset[LifecycleEvent] = frozenset(
    {E.BEFORE_BLOCK_TRAFFIC, E.AFTER_BLOCK_TRAFFIC, E.APPLICATION_STOP}
)

#: Every event an appspec ``hooks`` section may name on EC2/on-premises.
HOOK_EVENTS: tuple[LifecycleEvent, ...] = tuple(
    e for e in SERVER_ORDER if e not in SERVER_SIDE_EVENTS and e not in AGENT_BUILTIN_EVENTS
)

#: The default event list of ``codedeploy-local`` (the official agent's local deployer).
LOCAL_DEFAULT_ORDER: tuple[str, ...] = tuple(
    e.value for e in SERVER_ORDER if e not in SERVER_SIDE_EVENTS
)
