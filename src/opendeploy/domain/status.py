"""Status strings exactly as the CodeDeploy API spells them."""

from __future__ import annotations

import enum


class DeploymentStatus(enum.StrEnum):
    CREATED = "Created"
    QUEUED = "Queued"
    IN_PROGRESS = "InProgress"
    BAKING = "Baking"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    READY = "Ready"


TERMINAL_DEPLOYMENT_STATUSES = frozenset(
    {DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.STOPPED}
)


class InstanceStatus(enum.StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    UNKNOWN = "Unknown"
    READY = "Ready"


class LifecycleEventStatus(enum.StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    UNKNOWN = "Unknown"


class LifecycleErrorCode(enum.StrEnum):
    """The public API's ``LifecycleErrorCode`` plus the agent-only codes 6 and 7."""

    SUCCESS = "Success"
    SCRIPT_MISSING = "ScriptMissing"
    SCRIPT_NOT_EXECUTABLE = "ScriptNotExecutable"
    SCRIPT_TIMED_OUT = "ScriptTimedOut"
    SCRIPT_FAILED = "ScriptFailed"
    UNKNOWN_ERROR = "UnknownError"
    OUTPUTS_LEFT_OPEN = "OutputsLeftOpen"
    FAILED_AFTER_RESTART = "FailedAfterRestart"


#: The integer codes of the official agent's diagnostics payload (``error_code``).
AGENT_ERROR_CODE_NUMBERS: dict[LifecycleErrorCode, int] = {
    LifecycleErrorCode.SUCCESS: 0,
    LifecycleErrorCode.SCRIPT_MISSING: 1,
    LifecycleErrorCode.SCRIPT_NOT_EXECUTABLE: 2,
    LifecycleErrorCode.SCRIPT_TIMED_OUT: 3,
    LifecycleErrorCode.SCRIPT_FAILED: 4,
    LifecycleErrorCode.UNKNOWN_ERROR: 5,
    LifecycleErrorCode.OUTPUTS_LEFT_OPEN: 6,
    LifecycleErrorCode.FAILED_AFTER_RESTART: 7,
}
