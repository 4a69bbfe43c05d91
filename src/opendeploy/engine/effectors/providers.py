"""The traffic controller of a server with a load balancer declaration: every provider's driver.

A provider is a pool record and parser in :mod:`.load_balancers` (``POOL_PARSERS``) and a
:class:`~opendeploy.engine.effectors.traffic.PoolDriver`; this is where the drivers meet.
"""

from __future__ import annotations

from opendeploy.engine.effectors.elbv2 import ELBv2Driver
from opendeploy.engine.effectors.haproxy import HAProxyDriver
from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations
from opendeploy.engine.effectors.nginx import NginxDriver
from opendeploy.engine.effectors.traffic import DeclaredTrafficController, PoolDriver


def traffic_controller(declarations: LoadBalancerDeclarations) -> DeclaredTrafficController:
    """The controller that drives each declared target group through its provider."""
    drivers: dict[str, PoolDriver] = {
        "haproxy": HAProxyDriver(),
        "nginx": NginxDriver(),
        "elbv2": ELBv2Driver(),
    }
    return DeclaredTrafficController(declarations, drivers)
