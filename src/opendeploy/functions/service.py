"""The Lambda API's control operations over the store and the bundle store (synchronous).

Each method takes the operation's parameters as botocore sends them (path and query values
merged with the JSON body) and returns the output in AWS's shape, or raises a
:class:`~opendeploy.functions.errors.LambdaError` with Lambda's message.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from opendeploy.functions.errors import (
    CodeStorageExceededError,
    InvalidParameterValueError,
    PreconditionFailedError,
    ResourceConflictError,
    ResourceNotFoundError,
    ValidationError,
)
from opendeploy.functions.names import LATEST, Arns, check_alias_name, is_version
from opendeploy.functions.routing import pick_version
from opendeploy.revisions.blobstore import BlobStore
from opendeploy.store.functions import (
    AliasExistsError,
    AliasRecord,
    FunctionExistsError,
    Functions,
    FunctionVersion,
    StaleRevisionError,
)

#: The runtimes this host runs: the Python it runs under (awslambdaric is Python only here).
SUPPORTED_RUNTIMES = (
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
)
#: Lambda's limits for a directly uploaded zip (50 MB) and for a function's settings.
MAX_ZIP_BYTES = 50 * 1024 * 1024
MIN_TIMEOUT, MAX_TIMEOUT, DEFAULT_TIMEOUT = 1, 900, 3
MIN_MEMORY, MAX_MEMORY, DEFAULT_MEMORY = 128, 10240, 128
DEFAULT_PAGE = 50

_REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/"
    "GetAlias API to retrieve the latest Revision Id"
)

#: (bucket, key, version id or None) -> the hex SHA-256 of that object in the bundle store.
S3Lookup = Callable[[str, str, str | None], str | None]


def lambda_time(when: datetime) -> str:
    """Lambda's ``LastModified`` form: ``2026-12-08T01:30:00.000+0000``."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def code_sha256_b64(hex_digest: str) -> str:
    """``CodeSha256`` as Lambda gives it: the base64 of the zip's SHA-256 digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class FunctionService:
    """CreateFunction, UpdateFunctionCode/Configuration, PublishVersion, Get/List/Delete, and
    the alias operations."""

    def __init__(
        self,
        functions: Functions,
        blobs: BlobStore,
        arns: Arns,
        *,
        clock: Callable[[], datetime],
        s3_lookup: S3Lookup | None = None,
    ) -> None:
        self.functions = functions
        self.blobs = blobs
        self.arns = arns
        self._clock = clock
        self._s3_lookup = s3_lookup

    # -- shapes ----------------------------------------------------------------------------

    def configuration(self, record: FunctionVersion, *, qualified: bool = True) -> dict[str, Any]:
        """The ``FunctionConfiguration`` of a version (``qualified``: its ARN names it)."""
        config = record.config
        out: dict[str, Any] = {
            "FunctionName": record.function_name,
            "FunctionArn": self.arns.function(
                record.function_name, record.version if qualified else None
            ),
            "Runtime": config.get("Runtime"),
            "Role": config.get("Role"),
            "Handler": config.get("Handler"),
            "CodeSize": record.code_size,
            "Description": config.get("Description", ""),
            "Timeout": config.get("Timeout", DEFAULT_TIMEOUT),
            "MemorySize": config.get("MemorySize", DEFAULT_MEMORY),
            "LastModified": lambda_time(record.last_modified),
            "CodeSha256": code_sha256_b64(record.code_sha256),
            "Version": record.version,
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": record.revision_id,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
            "EphemeralStorage": {"Size": 512},
            "LoggingConfig": {
                "LogFormat": "Text",
                "LogGroup": f"/aws/lambda/{record.function_name}",
            },
        }
        if config.get("Environment"):
            out["Environment"] = {"Variables": dict(config["Environment"])}
        return out

    def alias_shape(self, alias: AliasRecord) -> dict[str, Any]:
        """The ``AliasConfiguration`` of an alias."""
        out: dict[str, Any] = {
            "AliasArn": self.arns.function(alias.function_name, alias.name),
            "Name": alias.name,
            "FunctionVersion": alias.function_version,
            "Description": alias.description,
            "RevisionId": alias.revision_id,
        }
        if alias.routing:
            out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.routing)}
        return out

    # -- lookups ---------------------------------------------------------------------------

    def not_found(self, name: str, qualifier: str | None = None) -> ResourceNotFoundError:
        return ResourceNotFoundError(f"Function not found: {self.arns.function(name, qualifier)}")

    def version(self, name: str, version: str) -> FunctionVersion:
        """The version, or Lambda's ResourceNotFoundException."""
        record = self.functions.version(name, version)
        if record is None:
            raise self.not_found(name, None if version == LATEST else version)
        return record

    def resolve(
        self, name: str, qualifier: str | None
    ) -> tuple[FunctionVersion, AliasRecord | None]:
        """The version a qualifier names (an alias: the version it points to), and the alias."""
        if qualifier is None or is_version(qualifier):
            return self.version(name, qualifier or LATEST), None
        alias = self.functions.alias(name, qualifier)
        if alias is None:
            if self.functions.version(name, LATEST) is None:
                raise self.not_found(name)
            raise ResourceNotFoundError(
                f"Function not found: {self.arns.function(name, qualifier)}"
            )
        return self.version(name, alias.function_version), alias

    def resolve_invocation(self, name: str, qualifier: str | None, draw: float) -> FunctionVersion:
        """The version an invocation of ``name:qualifier`` runs: through an alias with weights,
        the one ``draw`` (uniform in [0, 1)) picks. One read of the store."""
        qualifier = qualifier or LATEST
        alias, versions = self.functions.resolve(
            name, qualifier, is_alias=not is_version(qualifier)
        )
        if alias is None:
            if qualifier in versions:
                return versions[qualifier]
            return self.resolve(name, qualifier)[0]  # raises Lambda's not-found error
        version = pick_version(alias.function_version, alias.routing, draw)
        record = versions.get(version)
        if record is None:  # deleted under the alias
            raise self.not_found(name, version)
        return record

    def alias(self, name: str, alias_name: str) -> AliasRecord:
        alias = self.functions.alias(name, alias_name)
        if alias is None:
            if self.functions.version(name, LATEST) is None:
                raise self.not_found(name)
            raise ResourceNotFoundError(f"Alias not found: {self.arns.function(name, alias_name)}")
        return alias

    # -- functions -------------------------------------------------------------------------

    def create_function(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if params.get("PackageType", "Zip") != "Zip":
            raise InvalidParameterValueError(
                "This function host runs zip packages only (PackageType Zip)."
            )
        for required in ("Runtime", "Handler"):
            if not params.get(required):
                raise InvalidParameterValueError(
                    f"{required} must be set for functions of package type Zip."
                )
        config = self._config(params, creating=True)
        sha256, size = self._code(params.get("Code") or {})
        try:
            latest = self.functions.create(
                name, config=config, code_sha256=sha256, code_size=size, now=self._clock()
            )
        except FunctionExistsError:
            raise ResourceConflictError(f"Function already exist: {name}") from None
        if params.get("Publish"):
            published = self.functions.publish(name, now=self._clock(), description=None)
            assert published is not None
            return self.configuration(published[1])
        return self.configuration(latest, qualified=False)

    def update_code(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        sha256, size = self._code(params)
        updated = self._update_latest(name, code=(sha256, size), revision=params.get("RevisionId"))
        if params.get("Publish"):
            published = self.functions.publish(name, now=self._clock(), description=None)
            assert published is not None
            return self.configuration(published[1])
        return self.configuration(updated, qualified=False)

    def update_configuration(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        config = self._config(params, creating=False)
        updated = self._update_latest(name, config=config, revision=params.get("RevisionId"))
        return self.configuration(updated, qualified=False)

    def _update_latest(
        self,
        name: str,
        *,
        code: tuple[str, int] | None = None,
        config: Mapping[str, Any] | None = None,
        revision: str | None,
    ) -> FunctionVersion:
        try:
            updated = self.functions.update_latest(
                name, now=self._clock(), code=code, config=config, expected_revision=revision
            )
        except StaleRevisionError:
            raise PreconditionFailedError(_REVISION_MISMATCH) from None
        if updated is None:
            raise self.not_found(name)
        return updated

    def get_function(self, name: str, qualifier: str | None) -> dict[str, Any]:
        record, _alias = self.resolve(name, qualifier)
        configuration = self.configuration(record, qualified=qualifier is not None)
        if qualifier is not None and not is_version(qualifier):
            configuration["FunctionArn"] = self.arns.function(name, qualifier)
        return {"Configuration": configuration, "Code": {"RepositoryType": "S3"}}

    def get_configuration(self, name: str, qualifier: str | None) -> dict[str, Any]:
        return self.get_function(name, qualifier)["Configuration"]  # type: ignore[no-any-return]

    def list_functions(self, params: Mapping[str, Any]) -> dict[str, Any]:
        every_version = params.get("FunctionVersion") == "ALL"
        records: list[FunctionVersion] = []
        for latest in self.functions.latest_of_all():
            if every_version:
                records.extend(self.functions.versions(latest.function_name))
            else:
                records.append(latest)
        keys = [f"{r.function_name}:{r.version}" for r in records]
        shapes = [
            self.configuration(r, qualified=every_version or r.version != LATEST) for r in records
        ]
        page, marker = _page(keys, shapes, params)
        out: dict[str, Any] = {"Functions": page}
        if marker:
            out["NextMarker"] = marker
        return out

    def list_versions(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        records = self.functions.versions(name)
        if not records:
            raise self.not_found(name)
        page, marker = _page(
            [r.version for r in records], [self.configuration(r) for r in records], params
        )
        out: dict[str, Any] = {"Versions": page}
        if marker:
            out["NextMarker"] = marker
        return out

    def publish_version(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        latest = self.version(name, LATEST)
        if params.get("CodeSha256") and params["CodeSha256"] != code_sha256_b64(latest.code_sha256):
            raise InvalidParameterValueError(
                f"CodeSHA256 ({params['CodeSha256']}) is different from current CodeSHA256 in "
                f"$LATEST ({code_sha256_b64(latest.code_sha256)}). Please try again with the "
                "CodeSHA256 in $LATEST."
            )
        if params.get("RevisionId") and params["RevisionId"] != latest.revision_id:
            raise PreconditionFailedError(_REVISION_MISMATCH)
        published = self.functions.publish(
            name, now=self._clock(), description=params.get("Description")
        )
        if published is None:
            raise self.not_found(name)
        return self.configuration(published[1])

    def delete_function(self, name: str, qualifier: str | None) -> None:
        if qualifier is None:
            if not self.functions.delete(name):
                raise self.not_found(name)
            return
        if qualifier == LATEST:
            raise InvalidParameterValueError(
                "$LATEST version cannot be deleted without deleting the function."
            )
        if not is_version(qualifier):
            raise InvalidParameterValueError("Deletion of aliases is not currently supported.")
        self.version(name, qualifier)
        users = [
            a.name
            for a in self.functions.aliases(name)
            if a.function_version == qualifier or qualifier in a.routing
        ]
        if users:
            raise ResourceConflictError(
                "Unable to delete version because the following aliases reference it: "
                f"[{', '.join(users)}]"
            )
        self.functions.delete(name, qualifier)

    # -- aliases ---------------------------------------------------------------------------

    def create_alias(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        alias_name = params.get("Name") or ""
        check_alias_name(alias_name)
        version = params.get("FunctionVersion") or ""
        self.version(name, version)
        routing = self._routing(name, version, params.get("RoutingConfig"))
        record = AliasRecord(
            function_name=name,
            name=alias_name,
            function_version=version,
            description=params.get("Description") or "",
            routing=routing,
            revision_id="",
        )
        try:
            created = self.functions.create_alias(record)
        except AliasExistsError:
            raise ResourceConflictError(
                f"Alias already exists: {self.arns.function(name, alias_name)}"
            ) from None
        return self.alias_shape(created)

    def get_alias(self, name: str, alias_name: str) -> dict[str, Any]:
        return self.alias_shape(self.alias(name, alias_name))

    def update_alias(self, name: str, alias_name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        current = self.alias(name, alias_name)
        version = params.get("FunctionVersion") or current.function_version
        if version != current.function_version:
            self.version(name, version)
        if "RoutingConfig" in params:
            routing = self._routing(name, version, params["RoutingConfig"])
        else:
            routing = self._routing(
                name, version, {"AdditionalVersionWeights": dict(current.routing)}
            )
        record = AliasRecord(
            function_name=name,
            name=alias_name,
            function_version=version,
            description=(
                params["Description"]
                if params.get("Description") is not None
                else current.description
            ),
            routing=routing,
            revision_id=current.revision_id,
        )
        try:
            updated = self.functions.update_alias(
                record, expected_revision=params.get("RevisionId")
            )
        except StaleRevisionError:
            raise PreconditionFailedError(_REVISION_MISMATCH) from None
        if updated is None:
            raise ResourceNotFoundError(f"Alias not found: {self.arns.function(name, alias_name)}")
        return self.alias_shape(updated)

    def delete_alias(self, name: str, alias_name: str) -> None:
        # Lambda answers 204 whether or not the alias existed; the function must exist.
        self.version(name, LATEST)
        self.functions.delete_alias(name, alias_name)

    def list_aliases(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.version(name, LATEST)
        aliases = self.functions.aliases(name)
        if params.get("FunctionVersion"):
            aliases = [a for a in aliases if a.function_version == params["FunctionVersion"]]
        page, marker = _page(
            [a.name for a in aliases], [self.alias_shape(a) for a in aliases], params
        )
        out: dict[str, Any] = {"Aliases": page}
        if marker:
            out["NextMarker"] = marker
        return out

    # -- checks ----------------------------------------------------------------------------

    def _routing(self, name: str, version: str, routing: Any) -> dict[str, float]:
        weights = (routing or {}).get("AdditionalVersionWeights") or {}
        if not isinstance(weights, dict):
            raise InvalidParameterValueError("AdditionalVersionWeights must be a map.")
        if not weights:
            return {}
        if len(weights) > 1:
            raise InvalidParameterValueError(
                "Invalid routing configuration: an alias can route to at most one additional "
                "version (two versions in all)."
            )
        out: dict[str, float] = {}
        for extra, weight in weights.items():
            if (
                not isinstance(weight, int | float)
                or isinstance(weight, bool)
                or not (0.0 <= float(weight) <= 1.0)
            ):
                raise ValidationError(
                    "1 validation error detected: Value at 'routingConfig.additionalVersionWeights'"
                    " failed to satisfy constraint: Map value must satisfy constraint: [Member "
                    "must have value less than or equal to 1.0, Member must have value greater "
                    "than or equal to 0.0, Member must not be null]"
                )
            if version == LATEST or extra == LATEST:
                raise InvalidParameterValueError(
                    "$LATEST is not supported for an alias pointing to more than 1 version"
                )
            if not is_version(extra):
                raise ValidationError(
                    "1 validation error detected: Value at 'routingConfig.additionalVersionWeights'"
                    " failed to satisfy constraint: Map keys must satisfy constraint: [Member must "
                    "satisfy regular expression pattern: [0-9]+]"
                )
            if extra == version:
                raise InvalidParameterValueError(
                    f"Invalid function version {extra}. Function version {extra} is already "
                    "included in routing configuration."
                )
            self.version(name, extra)
            out[extra] = float(weight)
        return out

    def _config(self, params: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if creating or "Runtime" in params:
            runtime = params.get("Runtime")
            if runtime not in SUPPORTED_RUNTIMES:
                raise InvalidParameterValueError(
                    f"The runtime parameter of {runtime} is not supported by this function host"
                    f" (it runs Python functions under awslambdaric): use one of "
                    f"{', '.join(SUPPORTED_RUNTIMES)}."
                )
            config["Runtime"] = runtime
        for key in ("Handler", "Role", "Description"):
            if key in params:
                config[key] = params[key]
        if creating:
            config.setdefault("Description", "")
            config.setdefault("Role", "")
        if creating or "Timeout" in params:
            timeout = params.get("Timeout", DEFAULT_TIMEOUT)
            if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
                raise ValidationError(
                    f"1 validation error detected: Value '{timeout}' at 'timeout' failed to "
                    f"satisfy constraint: Member must have value between {MIN_TIMEOUT} and "
                    f"{MAX_TIMEOUT}"
                )
            config["Timeout"] = timeout
        if creating or "MemorySize" in params:
            memory = params.get("MemorySize", DEFAULT_MEMORY)
            if not MIN_MEMORY <= memory <= MAX_MEMORY:
                raise ValidationError(
                    f"1 validation error detected: Value '{memory}' at 'memorySize' failed to "
                    f"satisfy constraint: Member must have value between {MIN_MEMORY} and "
                    f"{MAX_MEMORY}"
                )
            config["MemorySize"] = memory
        if "Environment" in params:
            variables = (params.get("Environment") or {}).get("Variables") or {}
            reserved = sorted(k for k in variables if k.startswith("AWS_LAMBDA") or k in _RESERVED)
            if reserved:
                raise InvalidParameterValueError(
                    "Lambda was unable to configure your environment variables because the "
                    "environment variables you have provided contains reserved keys that are "
                    f"currently not supported for modification. Reserved keys used in this "
                    f"request: {', '.join(reserved)}"
                )
            config["Environment"] = {str(k): str(v) for k, v in variables.items()}
        return config

    def _code(self, code: Mapping[str, Any]) -> tuple[str, int]:
        """Store the zip a ``Code`` (or UpdateFunctionCode) names: (hex sha256, size)."""
        if code.get("ZipFile") is not None:
            raw = code["ZipFile"]
            try:
                data = raw if isinstance(raw, bytes) else base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidParameterValueError(
                    "Could not unzip uploaded file. Please check your file, then try to upload "
                    "again."
                ) from None
            return self._store_zip(data)
        if code.get("S3Bucket") and code.get("S3Key"):
            bucket, key = code["S3Bucket"], code["S3Key"]
            sha256 = (
                self._s3_lookup(bucket, key, code.get("S3ObjectVersion"))
                if self._s3_lookup
                else None
            )
            if sha256 is None:
                raise InvalidParameterValueError(
                    f"Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: "
                    f"The specified key does not exist. (bucket {bucket}, key {key} in this "
                    "server's bundle store)"
                )
            with self.blobs.open(sha256) as stream:
                return self._store_zip(stream.read())
        if code.get("ImageUri"):
            raise InvalidParameterValueError(
                "This function host runs zip packages only, not container images."
            )
        raise InvalidParameterValueError(
            "Please provide a source for function code: ZipFile, or S3Bucket and S3Key."
        )

    def _store_zip(self, data: bytes) -> tuple[str, int]:
        if len(data) > MAX_ZIP_BYTES:
            raise CodeStorageExceededError(
                f"Unzipped size must be smaller than {MAX_ZIP_BYTES} bytes"
            )
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise InvalidParameterValueError(
                "Could not unzip uploaded file. Please check your file, then try to upload again."
            )
        info = self.blobs.put_stream(io.BytesIO(data))
        return info.sha256, len(data)


#: Environment variables Lambda sets itself and refuses in a function's configuration.
_RESERVED = frozenset(
    {
        "_HANDLER",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


def _page(
    keys: list[str], items: list[dict[str, Any]], params: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items`` after ``params['Marker']`` (a key), at most ``MaxItems`` long."""
    limit = int(params.get("MaxItems") or DEFAULT_PAGE)
    if not 1 <= limit <= 10000:
        raise ValidationError(
            f"1 validation error detected: Value '{limit}' at 'maxItems' failed to satisfy "
            "constraint: Member must have value between 1 and 10000"
        )
    start = 0
    marker = params.get("Marker")
    if marker:
        if marker not in keys:
            raise InvalidParameterValueError("Invalid Marker.")
        start = keys.index(marker) + 1
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, keys[start + limit - 1] if more else None
