"""The one exception tree of OpenDeploy.

Each layer raises its own branch; boundaries translate once (``raise … from exc``): the API edge
maps errors to AWS ``__type`` codes, the CLI turns them into one red line and an exit code.

    OpenDeployError
    ├── AppSpecError                 appspec.yml is missing or invalid (names field, value, rule)
    ├── BundleError                  a revision bundle cannot be fetched or unpacked
    │   └── UnsafeArchiveError       an archive entry would escape its target or break a limit
    ├── AgentError                   host-side failures outside a script
    │   ├── AgentConfigError         codedeployagent.yml / on-premises file is invalid
    │   ├── InstallError             Install could not place files (file exists, collisions …)
    │   └── PermissionsError         chmod/chown/setfacl/chcon failed or is unavailable
    ├── ScriptError                  a lifecycle hook failed; carries the official error code
    └── ServiceError                 an AWS CodeDeploy API error (api/ and engine/ subclass it)
"""

from __future__ import annotations


class OpenDeployError(Exception):
    """Root of every error OpenDeploy raises on purpose."""


class AppSpecError(OpenDeployError, ValueError):
    """The AppSpec file is missing, unreadable or breaks a rule."""


class BundleError(OpenDeployError):
    """A revision bundle cannot be fetched, verified or unpacked."""


class UnsafeArchiveError(BundleError):
    """An archive entry would write outside its target, or the archive breaks a size limit."""


class AgentError(OpenDeployError):
    """A host-side failure that is not a script's own failure."""


class AgentConfigError(AgentError):
    """The agent configuration or on-premises configuration file is invalid."""


class InstallError(AgentError):
    """The Install event could not put the revision's files in place."""


class PermissionsError(AgentError):
    """Applying an appspec ``permissions`` entry failed."""


class ScriptError(OpenDeployError):
    """A lifecycle hook script failed.

    ``code`` is one of the official agent's error names (``ScriptMissing``, ``ScriptNotExecutable``,
    ``ScriptTimedOut``, ``ScriptFailed``, ``OutputsLeftOpen``, ``UnknownError``); ``log_tail`` holds
    the last lines of the script's output, as the official agent reports them.
    """

    def __init__(self, code: str, message: str, *, script: str = "", log_tail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.script = script
        self.log_tail = log_tail


class ServiceError(OpenDeployError):
    """An error with an AWS CodeDeploy error code (``__type``); the API edge renders it.

    Subclasses set ``code`` to the AWS exception name, e.g. ``ApplicationAlreadyExistsException``.
    """

    code: str = "InternalFailure"
    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
