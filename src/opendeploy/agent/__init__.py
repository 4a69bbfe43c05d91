"""The host agent: runs appspec.yml revisions (files, permissions, hooks) on this machine.

``execute_event`` runs one lifecycle event of a deployment against the on-disk deployment root
(the server-driven agent calls it once per host command); ``deploy_local`` runs a whole
deployment with no server (``opendeploy local``). The agent imports no server code.
"""

from __future__ import annotations

from opendeploy.agent.cleanup import read_cleanup_file, run_cleanup
from opendeploy.agent.config import (
    AgentConfig,
    OnPremisesConfig,
    Reloadable,
    SharedCredentials,
    default_agent_config,
    load_agent_config,
    load_on_premises_config,
    load_shared_credentials,
    resolve_agent_config_path,
)
from opendeploy.agent.deployment_root import DeploymentDir, DeploymentRoot
from opendeploy.agent.executor import (
    EventResult,
    EventStatus,
    deployment_root,
    execute_event,
    is_noop,
)
from opendeploy.agent.hooks import HookSettings, hook_environment, run_scripts
from opendeploy.agent.installer import InstallResult, install
from opendeploy.agent.local import (
    LocalDeploymentError,
    LocalDeploymentResult,
    LocalOptions,
    LocalReporter,
    build_local_spec,
    deploy_local,
    order_events,
)
from opendeploy.agent.permissions import apply_permissions, plan_permissions
from opendeploy.agent.script_log import ScriptLog
from opendeploy.agent.spec import (
    DeploymentSpec,
    DeploymentSpecError,
    GitHubRevision,
    LocalRevision,
    RevisionType,
    S3Revision,
    parse_deployment_spec,
)

__all__ = [
    "AgentConfig",
    "DeploymentDir",
    "DeploymentRoot",
    "DeploymentSpec",
    "DeploymentSpecError",
    "EventResult",
    "EventStatus",
    "GitHubRevision",
    "HookSettings",
    "InstallResult",
    "LocalDeploymentError",
    "LocalDeploymentResult",
    "LocalOptions",
    "LocalReporter",
    "LocalRevision",
    "OnPremisesConfig",
    "Reloadable",
    "RevisionType",
    "S3Revision",
    "ScriptLog",
    "SharedCredentials",
    "apply_permissions",
    "build_local_spec",
    "default_agent_config",
    "deploy_local",
    "deployment_root",
    "execute_event",
    "hook_environment",
    "install",
    "is_noop",
    "load_agent_config",
    "load_on_premises_config",
    "load_shared_credentials",
    "order_events",
    "parse_deployment_spec",
    "plan_permissions",
    "read_cleanup_file",
    "resolve_agent_config_path",
    "run_cleanup",
    "run_scripts",
]
