"""Which real load balancer each target group name stands for: the server's declaration.

A deployment group names target groups exactly as with AWS (``loadBalancerInfo.
targetGroupInfoList[].name``); ``opendeploy server --load-balancers FILE`` says what each name
is on this site. The file is YAML (or JSON)::

    target_groups:
      web:                              # the name groups use in targetGroupInfoList
        haproxy:
          socket: /run/haproxy/admin.sock   # HAProxy's runtime API ("stats socket … level admin")
          backend: be_web                   # the backend the instances are servers of
        servers:                            # instance name -> server name in that backend
          web-1: web1                       # (an instance not listed is the server of its name)
        drain_timeout_seconds: 30           # BlockTraffic: at most this long for in-flight requests
        healthy_timeout_seconds: 300        # AllowTraffic: at most this long for the health check

Each target group has exactly one provider key (``haproxy`` here; ``nginx`` with ``file``,
``upstream``, ``config`` and optional ``prefix``, ``pid_file``, ``health_path``, ``servers``
naming each instance's address in the upstream; ``elbv2`` with ``target_group``, an ARN or a
name, ``servers`` naming each instance's target ``id[:port]``), parsed by :data:`POOL_PARSERS`
into a pool record that says where its pool is; the traffic controller hands the group to that
provider's driver (``haproxy.py``, ``nginx.py``, ``elbv2.py``).

A group that names a target group the file does not declare is refused when it is created or
updated, with the names that exist. Without a file, names are not checked and the traffic steps
leave traffic alone (and say so in their diagnostics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opendeploy.engine.declaration_file import ReadWhenChanged, read_yaml
from opendeploy.errors import OpenDeployError

#: AWS's default deregistration delay for a target group is 300 s; ours is shorter because a
#: deployment waits through it for every batch.
DEFAULT_DRAIN_TIMEOUT_SECONDS = 30.0
#: AWS waits up to an hour for a registered instance to turn healthy.
DEFAULT_HEALTHY_TIMEOUT_SECONDS = 3600.0


class LoadBalancerDeclarationError(OpenDeployError, ValueError):
    """The load balancer declaration file is unreadable or breaks a rule (says where)."""


@dataclass(frozen=True, slots=True)
class HAProxyPool:
    """A backend of an HAProxy, driven through its runtime API socket."""

    socket: Path
    backend: str
    provider: str = "haproxy"

    def describe(self) -> str:
        return f"HAProxy {self.socket} backend {self.backend}"


@dataclass(frozen=True, slots=True)
class NginxPool:
    """An ``upstream`` block of an nginx, in a file OpenDeploy rewrites (then ``nginx -s
    reload``); ``servers`` name each instance's ``server`` address in it."""

    #: The file holding the upstream block (OpenDeploy's own, included by nginx's config).
    file: Path
    upstream: str
    #: nginx's main configuration (``nginx -c``), which ``nginx -t`` checks and reload reads.
    config: Path
    #: nginx's prefix (``nginx -p``), when it runs with one.
    prefix: Path | None = None
    #: Where nginx writes its master's pid (None: the ``pid`` directive of ``config``, else
    #: Debian's ``/run/nginx.pid``).
    pid_file: Path | None = None
    binary: str = "nginx"
    #: AllowTraffic's own health check (nginx OSS has none): GET this path of the server's
    #: address until it answers 2xx/3xx.
    health_path: str = "/"
    provider: str = "nginx"

    def describe(self) -> str:
        return f"nginx upstream {self.upstream} in {self.file}"


@dataclass(frozen=True, slots=True)
class ELBv2Pool:
    """An Elastic Load Balancing v2 target group (its ARN, or its name), through boto3 with its
    standard configuration (credentials, region, ``AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2``);
    ``servers`` name each instance's target (``id`` or ``id:port``)."""

    target_group: str
    provider: str = "elbv2"

    def describe(self) -> str:
        return f"ELBv2 target group {self.target_group}"


#: A provider's pool record; each provider adds its own record here.
Pool = HAProxyPool | NginxPool | ELBv2Pool


def _haproxy_pool(spec: Mapping[str, Any], at: str) -> Pool:
    if not spec.get("socket") or not spec.get("backend"):
        raise LoadBalancerDeclarationError(f"{at}: expected 'socket' and 'backend'")
    return HAProxyPool(Path(str(spec["socket"])), str(spec["backend"]))


def _nginx_pool(spec: Mapping[str, Any], at: str) -> Pool:
    if not spec.get("file") or not spec.get("upstream") or not spec.get("config"):
        raise LoadBalancerDeclarationError(f"{at}: expected 'file', 'upstream' and 'config'")
    prefix, pid_file = (Path(str(spec[k])) if spec.get(k) else None for k in ("prefix", "pid_file"))
    path = str(spec.get("health_path", "/"))
    if not path.startswith("/"):
        raise LoadBalancerDeclarationError(f"{at}.health_path: {path!r} does not start with /")
    return NginxPool(
        file=Path(str(spec["file"])),
        upstream=str(spec["upstream"]),
        config=Path(str(spec["config"])),
        binary=str(spec.get("binary", "nginx")),
        health_path=path,
        prefix=prefix,
        pid_file=pid_file,
    )


def _elbv2_pool(spec: Mapping[str, Any], at: str) -> Pool:
    if not spec.get("target_group"):
        raise LoadBalancerDeclarationError(
            f"{at}: expected 'target_group' (the ELBv2 target group's ARN or name)"
        )
    return ELBv2Pool(str(spec["target_group"]))


#: Provider key in a target group's declaration -> the parser of its mapping (``at`` names the
#: place, for errors).
POOL_PARSERS: dict[str, Callable[[Mapping[str, Any], str], Pool]] = {
    "haproxy": _haproxy_pool,
    "nginx": _nginx_pool,
    "elbv2": _elbv2_pool,
}


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """One declared target group: its pool, and how each instance is named in it."""

    name: str
    pool: Pool
    servers: Mapping[str, str] = field(default_factory=dict)
    drain_timeout_seconds: float = DEFAULT_DRAIN_TIMEOUT_SECONDS
    healthy_timeout_seconds: float = DEFAULT_HEALTHY_TIMEOUT_SECONDS

    def server_of(self, instance: str) -> str:
        """The instance's server name in the pool."""
        return self.servers.get(instance, instance)

    def instance_of(self, server: str) -> str:
        """The instance that ``server`` stands for (the inverse of :meth:`server_of`)."""
        for instance, name in self.servers.items():
            if name == server:
                return instance
        return server


@dataclass(frozen=True, slots=True)
class LoadBalancerDeclarations:
    """Every declared target group by name."""

    target_groups: Mapping[str, TargetGroup]

    def unknown(self, names: list[str]) -> list[str]:
        """Those of ``names`` that are not declared."""
        return [n for n in names if n not in self.target_groups]

    @classmethod
    def load(cls, path: Path) -> LoadBalancerDeclarations:
        return cls.parse(read_yaml(path, LoadBalancerDeclarationError), where=str(path))

    @classmethod
    def parse(cls, raw: Any, *, where: str = "load balancers") -> LoadBalancerDeclarations:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("target_groups"), Mapping):
            raise LoadBalancerDeclarationError(f"{where}: expected a 'target_groups' mapping")
        groups: dict[str, TargetGroup] = {}
        for name, spec in raw["target_groups"].items():
            at = f"{where}: target_groups.{name}"
            if not isinstance(spec, Mapping):
                raise LoadBalancerDeclarationError(f"{at}: expected a mapping")
            providers = [key for key in POOL_PARSERS if key in spec]
            if len(providers) != 1:
                raise LoadBalancerDeclarationError(
                    f"{at}: expected exactly one provider key of {', '.join(POOL_PARSERS)}"
                    + (f" (found {', '.join(providers)})" if providers else "")
                )
            provider = providers[0]
            if not isinstance(spec[provider], Mapping):
                raise LoadBalancerDeclarationError(f"{at}.{provider}: expected a mapping")
            pool = POOL_PARSERS[provider](spec[provider], f"{at}.{provider}")
            servers = spec.get("servers") or {}
            if not isinstance(servers, Mapping):
                raise LoadBalancerDeclarationError(f"{at}.servers: expected a mapping")
            groups[str(name)] = TargetGroup(
                name=str(name),
                pool=pool,
                servers={str(k): str(v) for k, v in servers.items()},
                drain_timeout_seconds=_seconds(
                    spec, "drain_timeout_seconds", DEFAULT_DRAIN_TIMEOUT_SECONDS, at
                ),
                healthy_timeout_seconds=_seconds(
                    spec, "healthy_timeout_seconds", DEFAULT_HEALTHY_TIMEOUT_SECONDS, at
                ),
            )
        return cls(groups)


def _seconds(spec: Mapping[str, Any], key: str, default: float, at: str) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise LoadBalancerDeclarationError(f"{at}.{key}: {value!r} is not a positive number")
    return float(value)


#: The declarations in a path, read again only when the file changed.
declared = ReadWhenChanged(LoadBalancerDeclarations.load, LoadBalancerDeclarationError)
