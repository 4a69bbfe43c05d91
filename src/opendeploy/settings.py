"""Settings of the server, built once (from flags, environment and defaults) and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """What ``opendeploy server`` runs with. Defaults are visible here and nowhere else."""

    data_dir: Path
    database_url: str
    region: str = "us-east-1"
    account_id: str = "000000000000"
    host: str = "127.0.0.1"
    port: int = 8443
    #: TLS: a PEM certificate (chain) and its key; or ``tls_self_signed`` to create both in the
    #: data directory on first start. Neither: plain HTTP (fine on loopback, not for agents).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_self_signed: bool = False
    #: Domains under which the S3 front also answers virtual-hosted-style requests
    #: (``<bucket>.<domain>``), as aws-sdk-s3 for Ruby (the official agent's) sends them to an
    #: endpoint named by DNS. The self-signed certificate covers ``*.<domain>`` too.
    s3_domains: tuple[str, ...] = ()
    #: An agent that has not polled for this long is unreachable; its event fails.
    agent_dead_after_seconds: float = 15.0
    #: A running lifecycle event fails after this long (AWS: 3600 s, not adjustable there).
    event_timeout_seconds: float = 3600.0
    #: A deployment running longer fails with TIMEOUT (AWS: 12 h for an EC2/on-premises in-place
    #: deployment with a predefined configuration).
    deployment_timeout_seconds: float = 12 * 3600.0
    #: A dispatched command that no agent acknowledges fails after this long (AWS: 5 min).
    event_start_timeout_seconds: float = 300.0
    #: After a (re)start, an agent not heard from yet gets at least this long before it counts as
    #: dead: agents back off while the server is down (ours up to 30 s, the official agent's up
    #: to about 90 s).
    restart_grace_seconds: float = 95.0
    #: PollHostCommand is held this long when there is no work (the agent's read timeout is 80 s).
    poll_timeout_seconds: float = 20.0
    #: The engine re-examines active deployments this often even when nothing wakes it.
    engine_tick_seconds: float = 0.5
    #: A replica's claim on a deployment while it works on it; a dead replica's expires after this.
    lease_seconds: float = 30.0
    #: A server step (BlockTraffic, AllowTraffic …) whose runner stops renewing its claim is
    #: taken up again (and run again: effectors are idempotent) after this long.
    step_lease_seconds: float = 30.0
    #: The length, in seconds, of every minute the API counts: traffic-shift intervals
    #: (``trafficRoutingConfig``), the blue/green ready wait (``waitTimeInMinutes``) and
    #: termination wait (``terminationWaitTimeInMinutes``). 60 is AWS's; a smaller value runs
    #: those waits in seconds, for tests, demos and benchmarks (the API still shows minutes).
    minute_seconds: float = 60.0
    #: The load balancers behind deployment groups' target group names (see
    #: ``engine.effectors.load_balancers``); None: traffic steps change nothing.
    load_balancers_file: Path | None = None
    #: What alarm names stand for, the analysis gates and the Alertmanager receiver's token
    #: (see ``engine.alarms.declarations``); None: every alarm name is a CloudWatch alarm.
    alarms_file: Path | None = None
    #: The alarm watcher reads every watched deployment's alarms and gates this often.
    alarm_poll_seconds: float = 1.0
    #: The built-in function host (``functions/``): the Lambda API on this server, Python
    #: functions run as processes under awslambdaric. Off: the Lambda API answers that it is off.
    function_host: bool = False
    #: Function processes running at once per (function, version).
    function_concurrency: int = 4

    @property
    def minute(self) -> timedelta:
        """:attr:`minute_seconds` as the ``minute`` argument of ``engine.schedule``."""
        return timedelta(seconds=self.minute_seconds)

    @property
    def tls(self) -> bool:
        return self.tls_self_signed or self.tls_cert is not None
