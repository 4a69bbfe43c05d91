"""Identifier formats AWS uses, so that IDs look and validate the same."""

from __future__ import annotations

import secrets
import string
import uuid

_DEPLOYMENT_ID_ALPHABET = string.ascii_uppercase + string.digits


def new_deployment_id() -> str:
    """A deployment id as AWS makes them: ``d-`` and nine characters of A-Z0-9."""
    return "d-" + "".join(secrets.choice(_DEPLOYMENT_ID_ALPHABET) for _ in range(9))


def new_local_deployment_id() -> str:
    """A ``codedeploy-local`` deployment id: ``d-XXXXXXXXX-local``."""
    return new_deployment_id() + "-local"


def new_uuid() -> str:
    return str(uuid.uuid4())
