"""The service models the server speaks, loaded from ``opendeploy/data`` with botocore's classes.

botocore already resolves shapes, members, traits and operations of its JSON model format, so the
server reads the very files its clients read and nothing is restated by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from botocore.model import OperationModel, ServiceModel

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CODEDEPLOY_MODEL_PATH = DATA_DIR / "codedeploy" / "2014-10-06" / "service-2.json"


@dataclass(frozen=True)
class ServiceSpec:
    """One service the server answers: its model and how requests name and sign for it.

    ``target_prefix`` is the ``X-Amz-Target`` prefix (awsJson1_1) and the service segment of the
    RPC v2 path; ``signing_names`` are the SigV4 service names accepted in the credential scope.
    """

    model: Any  # botocore.model.ServiceModel (untyped library)
    target_prefixes: frozenset[str]
    signing_names: frozenset[str]
    _operations: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def name(self) -> str:
        return str(self.model.metadata.get("serviceId") or self.model.service_name)

    @property
    def operation_names(self) -> frozenset[str]:
        return self._operations

    def operation(self, name: str) -> Any | None:
        """The botocore ``OperationModel`` named ``name``, or None when the model has none."""
        if name not in self._operations:
            return None
        operation: OperationModel = self.model.operation_model(name)
        return operation


def load_service(
    path: Path,
    *,
    extra_target_prefixes: frozenset[str] = frozenset(),
    extra_signing_names: frozenset[str] = frozenset(),
) -> ServiceSpec:
    """Read a botocore-format model (``service-2.json``/``*.api.json``) into a ``ServiceSpec``."""
    with path.open("rb") as fh:
        raw = json.load(fh)
    metadata = raw["metadata"]
    model = ServiceModel(raw, service_name=metadata.get("endpointPrefix"))
    return ServiceSpec(
        model=model,
        target_prefixes=frozenset({metadata["targetPrefix"]}) | extra_target_prefixes,
        signing_names=frozenset({metadata.get("signingName") or metadata["endpointPrefix"]})
        | extra_signing_names,
        _operations=frozenset(raw["operations"]),
    )


@cache
def codedeploy_service() -> ServiceSpec:
    """The CodeDeploy control API (``CodeDeploy_20141006``, signing name ``codedeploy``)."""
    return load_service(CODEDEPLOY_MODEL_PATH)
