"""Every error with an AWS error code, one class per code.

Generated from the ``exception`` shapes of the CodeDeploy model (``data/codedeploy/…``) plus
the protocol-level errors AWS services answer with. ``code`` is the ``__type`` a client sees; the
API edge renders any ``ServiceError`` and its message. Raise them from store, engine and
handlers alike: ``raise ApplicationDoesNotExistError(f"No application found for name: {name}")``.
"""

from __future__ import annotations

from opendeploy.errors import ServiceError


class AlarmsLimitExceededError(ServiceError):
    """The maximum number of alarms for a deployment group (10) was exceeded."""

    code = "AlarmsLimitExceededException"


class ApplicationAlreadyExistsError(ServiceError):
    """An application with the specified name with the user or Amazon Web Services account …"""

    code = "ApplicationAlreadyExistsException"


class ApplicationDoesNotExistError(ServiceError):
    """The application does not exist with the user or Amazon Web Services account."""

    code = "ApplicationDoesNotExistException"


class ApplicationLimitExceededError(ServiceError):
    """More applications were attempted to be created than are allowed."""

    code = "ApplicationLimitExceededException"


class ApplicationNameRequiredError(ServiceError):
    """The minimum number of required application names was not specified."""

    code = "ApplicationNameRequiredException"


class ArnNotSupportedError(ServiceError):
    """The specified ARN is not supported."""

    code = "ArnNotSupportedException"


class BatchLimitExceededError(ServiceError):
    """The maximum number of names or IDs allowed for this request (100) was exceeded."""

    code = "BatchLimitExceededException"


class BucketNameFilterRequiredError(ServiceError):
    """A bucket name is required, but was not provided."""

    code = "BucketNameFilterRequiredException"


class DeploymentAlreadyCompletedError(ServiceError):
    """The deployment is already complete."""

    code = "DeploymentAlreadyCompletedException"


class DeploymentAlreadyStartedError(ServiceError):
    """A deployment to a target was attempted while another deployment was in progress."""

    code = "DeploymentAlreadyStartedException"


class DeploymentConfigAlreadyExistsError(ServiceError):
    """A deployment configuration with the specified name with the user or Amazon Web Services"""

    code = "DeploymentConfigAlreadyExistsException"


class DeploymentConfigDoesNotExistError(ServiceError):
    """The deployment configuration does not exist with the user or Amazon Web Services …"""

    code = "DeploymentConfigDoesNotExistException"


class DeploymentConfigInUseError(ServiceError):
    """The deployment configuration is still in use."""

    code = "DeploymentConfigInUseException"


class DeploymentConfigLimitExceededError(ServiceError):
    """The deployment configurations limit was exceeded."""

    code = "DeploymentConfigLimitExceededException"


class DeploymentConfigNameRequiredError(ServiceError):
    """The deployment configuration name was not specified."""

    code = "DeploymentConfigNameRequiredException"


class DeploymentDoesNotExistError(ServiceError):
    """The deployment with the user or Amazon Web Services account does not exist."""

    code = "DeploymentDoesNotExistException"


class DeploymentGroupAlreadyExistsError(ServiceError):
    """A deployment group with the specified name with the user or Amazon Web Services account"""

    code = "DeploymentGroupAlreadyExistsException"


class DeploymentGroupDoesNotExistError(ServiceError):
    """The named deployment group with the user or Amazon Web Services account does not exist."""

    code = "DeploymentGroupDoesNotExistException"


class DeploymentGroupLimitExceededError(ServiceError):
    """The deployment groups limit was exceeded."""

    code = "DeploymentGroupLimitExceededException"


class DeploymentGroupNameRequiredError(ServiceError):
    """The deployment group name was not specified."""

    code = "DeploymentGroupNameRequiredException"


class DeploymentIdRequiredError(ServiceError):
    """At least one deployment ID must be specified."""

    code = "DeploymentIdRequiredException"


class DeploymentIsNotInReadyStateError(ServiceError):
    """The deployment does not have a status of Ready and can't continue yet."""

    code = "DeploymentIsNotInReadyStateException"


class DeploymentLimitExceededError(ServiceError):
    """The number of allowed deployments was exceeded."""

    code = "DeploymentLimitExceededException"


class DeploymentNotStartedError(ServiceError):
    """The specified deployment has not started."""

    code = "DeploymentNotStartedException"


class DeploymentTargetDoesNotExistError(ServiceError):
    """The provided target ID does not belong to the attempted deployment."""

    code = "DeploymentTargetDoesNotExistException"


class DeploymentTargetIdRequiredError(ServiceError):
    """A deployment target ID was not provided."""

    code = "DeploymentTargetIdRequiredException"


class DeploymentTargetListSizeExceededError(ServiceError):
    """The maximum number of targets that can be associated with an Amazon ECS or Lambda …"""

    code = "DeploymentTargetListSizeExceededException"


class DescriptionTooLongError(ServiceError):
    """The description is too long."""

    code = "DescriptionTooLongException"


class ECSServiceMappingLimitExceededError(ServiceError):
    """The Amazon ECS service is associated with more than one deployment groups."""

    code = "ECSServiceMappingLimitExceededException"


class GitHubAccountTokenDoesNotExistError(ServiceError):
    """No GitHub account connection exists with the named specified in the call."""

    code = "GitHubAccountTokenDoesNotExistException"


class GitHubAccountTokenNameRequiredError(ServiceError):
    """The call is missing a required GitHub account connection name."""

    code = "GitHubAccountTokenNameRequiredException"


class IamArnRequiredError(ServiceError):
    """No IAM ARN was included in the request."""

    code = "IamArnRequiredException"


class IamSessionArnAlreadyRegisteredError(ServiceError):
    """The request included an IAM session ARN that has already been used to register a …"""

    code = "IamSessionArnAlreadyRegisteredException"


class IamUserArnAlreadyRegisteredError(ServiceError):
    """The specified user ARN is already registered with an on-premises instance."""

    code = "IamUserArnAlreadyRegisteredException"


class IamUserArnRequiredError(ServiceError):
    """An user ARN was not specified."""

    code = "IamUserArnRequiredException"


class InstanceDoesNotExistError(ServiceError):
    """The specified instance does not exist in the deployment group."""

    code = "InstanceDoesNotExistException"


class InstanceIdRequiredError(ServiceError):
    """The instance ID was not specified."""

    code = "InstanceIdRequiredException"


class InstanceLimitExceededError(ServiceError):
    """The maximum number of allowed on-premises instances in a single call was exceeded."""

    code = "InstanceLimitExceededException"


class InstanceNameAlreadyRegisteredError(ServiceError):
    """The specified on-premises instance name is already registered."""

    code = "InstanceNameAlreadyRegisteredException"


class InstanceNameRequiredError(ServiceError):
    """An on-premises instance name was not specified."""

    code = "InstanceNameRequiredException"


class InstanceNotRegisteredError(ServiceError):
    """The specified on-premises instance is not registered."""

    code = "InstanceNotRegisteredException"


class InvalidAlarmConfigError(ServiceError):
    """The format of the alarm configuration is invalid."""

    code = "InvalidAlarmConfigException"


class InvalidApplicationNameError(ServiceError):
    """The application name was specified in an invalid format."""

    code = "InvalidApplicationNameException"


class InvalidArnError(ServiceError):
    """The specified ARN is not in a valid format."""

    code = "InvalidArnException"


class InvalidAutoRollbackConfigError(ServiceError):
    """The automatic rollback configuration was specified in an invalid format."""

    code = "InvalidAutoRollbackConfigException"


class InvalidAutoScalingGroupError(ServiceError):
    """The Auto Scaling group was specified in an invalid format or does not exist."""

    code = "InvalidAutoScalingGroupException"


class InvalidAutoScalingGroupProcessToSuspendError(ServiceError):
    """The autoScalingGroupProcessesToSuspend list in ec2DeploymentOptions contains a process …"""

    code = "InvalidAutoScalingGroupProcessToSuspendException"


class InvalidBlueGreenDeploymentConfigurationError(ServiceError):
    """The configuration for the blue/green deployment group was provided in an invalid format."""

    code = "InvalidBlueGreenDeploymentConfigurationException"


class InvalidBucketNameFilterError(ServiceError):
    """The bucket name either doesn't exist or was specified in an invalid format."""

    code = "InvalidBucketNameFilterException"


class InvalidComputePlatformError(ServiceError):
    """The computePlatform is invalid."""

    code = "InvalidComputePlatformException"


class InvalidDeployedStateFilterError(ServiceError):
    """The deployed state filter was specified in an invalid format."""

    code = "InvalidDeployedStateFilterException"


class InvalidDeploymentConfigNameError(ServiceError):
    """The deployment configuration name was specified in an invalid format."""

    code = "InvalidDeploymentConfigNameException"


class InvalidDeploymentGroupNameError(ServiceError):
    """The deployment group name was specified in an invalid format."""

    code = "InvalidDeploymentGroupNameException"


class InvalidDeploymentIdError(ServiceError):
    """At least one of the deployment IDs was specified in an invalid format."""

    code = "InvalidDeploymentIdException"


class InvalidDeploymentInstanceTypeError(ServiceError):
    """An instance type was specified for an in-place deployment."""

    code = "InvalidDeploymentInstanceTypeException"


class InvalidDeploymentStatusError(ServiceError):
    """The specified deployment status doesn't exist or cannot be determined."""

    code = "InvalidDeploymentStatusException"


class InvalidDeploymentStyleError(ServiceError):
    """An invalid deployment style was specified."""

    code = "InvalidDeploymentStyleException"


class InvalidDeploymentTargetIdError(ServiceError):
    """The target ID provided was not valid."""

    code = "InvalidDeploymentTargetIdException"


class InvalidDeploymentWaitTypeError(ServiceError):
    """The wait type is invalid."""

    code = "InvalidDeploymentWaitTypeException"


class InvalidEC2TagCombinationError(ServiceError):
    """A call was submitted that specified both Ec2TagFilters and Ec2TagSet, but only one of …"""

    code = "InvalidEC2TagCombinationException"


class InvalidEC2TagError(ServiceError):
    """The tag was specified in an invalid format."""

    code = "InvalidEC2TagException"


class InvalidECSServiceError(ServiceError):
    """The Amazon ECS service identifier is not valid."""

    code = "InvalidECSServiceException"


class InvalidExternalIdError(ServiceError):
    """The external ID was specified in an invalid format."""

    code = "InvalidExternalIdException"


class InvalidFileExistsBehaviorError(ServiceError):
    """An invalid fileExistsBehavior option was specified to determine how CodeDeploy handles …"""

    code = "InvalidFileExistsBehaviorException"


class InvalidGitHubAccountTokenError(ServiceError):
    """The GitHub token is not valid."""

    code = "InvalidGitHubAccountTokenException"


class InvalidGitHubAccountTokenNameError(ServiceError):
    """The format of the specified GitHub account connection name is invalid."""

    code = "InvalidGitHubAccountTokenNameException"


class InvalidIamSessionArnError(ServiceError):
    """The IAM session ARN was specified in an invalid format."""

    code = "InvalidIamSessionArnException"


class InvalidIamUserArnError(ServiceError):
    """The user ARN was specified in an invalid format."""

    code = "InvalidIamUserArnException"


class InvalidIgnoreApplicationStopFailuresValueError(ServiceError):
    """The IgnoreApplicationStopFailures value is invalid."""

    code = "InvalidIgnoreApplicationStopFailuresValueException"


class InvalidInputError(ServiceError):
    """The input was specified in an invalid format."""

    code = "InvalidInputException"


class InvalidInstanceIdError(ServiceError):
    """."""

    code = "InvalidInstanceIdException"


class InvalidInstanceNameError(ServiceError):
    """The on-premises instance name was specified in an invalid format."""

    code = "InvalidInstanceNameException"


class InvalidInstanceStatusError(ServiceError):
    """The specified instance status does not exist."""

    code = "InvalidInstanceStatusException"


class InvalidInstanceTypeError(ServiceError):
    """An invalid instance type was specified for instances in a blue/green deployment."""

    code = "InvalidInstanceTypeException"


class InvalidKeyPrefixFilterError(ServiceError):
    """The specified key prefix filter was specified in an invalid format."""

    code = "InvalidKeyPrefixFilterException"


class InvalidLifecycleEventHookExecutionIdError(ServiceError):
    """A lifecycle event hook is invalid."""

    code = "InvalidLifecycleEventHookExecutionIdException"


class InvalidLifecycleEventHookExecutionStatusError(ServiceError):
    """The result of a Lambda validation function that verifies a lifecycle event is invalid."""

    code = "InvalidLifecycleEventHookExecutionStatusException"


class InvalidLoadBalancerInfoError(ServiceError):
    """An invalid load balancer name, or no load balancer name, was specified."""

    code = "InvalidLoadBalancerInfoException"


class InvalidMinimumHealthyHostValueError(ServiceError):
    """The minimum healthy instance value was specified in an invalid format."""

    code = "InvalidMinimumHealthyHostValueException"


class InvalidNextTokenError(ServiceError):
    """The next token was specified in an invalid format."""

    code = "InvalidNextTokenException"


class InvalidOnPremisesTagCombinationError(ServiceError):
    """A call was submitted that specified both OnPremisesTagFilters and OnPremisesTagSet, but"""

    code = "InvalidOnPremisesTagCombinationException"


class InvalidOperationError(ServiceError):
    """An invalid operation was detected."""

    code = "InvalidOperationException"


class InvalidRegistrationStatusError(ServiceError):
    """The registration status was specified in an invalid format."""

    code = "InvalidRegistrationStatusException"


class InvalidRevisionError(ServiceError):
    """The revision was specified in an invalid format."""

    code = "InvalidRevisionException"


class InvalidRoleError(ServiceError):
    """The service role ARN was specified in an invalid format."""

    code = "InvalidRoleException"


class InvalidSortByError(ServiceError):
    """The column name to sort by is either not present or was specified in an invalid format."""

    code = "InvalidSortByException"


class InvalidSortOrderError(ServiceError):
    """The sort order was specified in an invalid format."""

    code = "InvalidSortOrderException"


class InvalidTagError(ServiceError):
    """The tag was specified in an invalid format."""

    code = "InvalidTagException"


class InvalidTagFilterError(ServiceError):
    """The tag filter was specified in an invalid format."""

    code = "InvalidTagFilterException"


class InvalidTagsToAddError(ServiceError):
    """The specified tags are not valid."""

    code = "InvalidTagsToAddException"


class InvalidTargetError(ServiceError):
    """A target is not valid."""

    code = "InvalidTargetException"


class InvalidTargetFilterNameError(ServiceError):
    """The target filter name is invalid."""

    code = "InvalidTargetFilterNameException"


class InvalidTargetGroupPairError(ServiceError):
    """A target group pair associated with this deployment is not valid."""

    code = "InvalidTargetGroupPairException"


class InvalidTargetInstancesError(ServiceError):
    """The target instance configuration is invalid."""

    code = "InvalidTargetInstancesException"


class InvalidTimeRangeError(ServiceError):
    """The specified time range was specified in an invalid format."""

    code = "InvalidTimeRangeException"


class InvalidTrafficRoutingConfigurationError(ServiceError):
    """The configuration that specifies how traffic is routed during a deployment is invalid."""

    code = "InvalidTrafficRoutingConfigurationException"


class InvalidTriggerConfigError(ServiceError):
    """The trigger was specified in an invalid format."""

    code = "InvalidTriggerConfigException"


class InvalidUpdateOutdatedInstancesOnlyValueError(ServiceError):
    """The UpdateOutdatedInstancesOnly value is invalid."""

    code = "InvalidUpdateOutdatedInstancesOnlyValueException"


class InvalidZonalDeploymentConfigurationError(ServiceError):
    """The ZonalConfig object is not valid."""

    code = "InvalidZonalDeploymentConfigurationException"


class LifecycleEventAlreadyCompletedError(ServiceError):
    """An attempt to return the status of an already completed lifecycle event occurred."""

    code = "LifecycleEventAlreadyCompletedException"


class LifecycleHookLimitExceededError(ServiceError):
    """The limit for lifecycle hooks was exceeded."""

    code = "LifecycleHookLimitExceededException"


class MultipleIamArnsProvidedError(ServiceError):
    """Both an user ARN and an IAM session ARN were included in the request."""

    code = "MultipleIamArnsProvidedException"


class OperationNotSupportedError(ServiceError):
    """The API used does not support the deployment."""

    code = "OperationNotSupportedException"


class ResourceArnRequiredError(ServiceError):
    """The ARN of a resource is required, but was not found."""

    code = "ResourceArnRequiredException"


class ResourceValidationError(ServiceError):
    """The specified resource could not be validated."""

    code = "ResourceValidationException"


class RevisionDoesNotExistError(ServiceError):
    """The named revision does not exist with the user or Amazon Web Services account."""

    code = "RevisionDoesNotExistException"


class RevisionRequiredError(ServiceError):
    """The revision ID was not specified."""

    code = "RevisionRequiredException"


class RoleRequiredError(ServiceError):
    """The role ID was not specified."""

    code = "RoleRequiredException"


class TagLimitExceededError(ServiceError):
    """The maximum allowed number of tags was exceeded."""

    code = "TagLimitExceededException"


class TagRequiredError(ServiceError):
    """A tag was not specified."""

    code = "TagRequiredException"


class TagSetListLimitExceededError(ServiceError):
    """The number of tag groups included in the tag set list exceeded the maximum allowed …"""

    code = "TagSetListLimitExceededException"


class ThrottlingError(ServiceError):
    """An API function was called too frequently."""

    code = "ThrottlingException"


class TriggerTargetsLimitExceededError(ServiceError):
    """The maximum allowed number of triggers was exceeded."""

    code = "TriggerTargetsLimitExceededException"


class UnsupportedActionForDeploymentTypeError(ServiceError):
    """A call was submitted that is not supported for the specified deployment type."""

    code = "UnsupportedActionForDeploymentTypeException"


class UnrecognizedClientError(ServiceError):
    """The security token included in the request is invalid (unknown access key)."""

    code = "UnrecognizedClientException"


class InvalidSignatureError(ServiceError):
    """The request signature does not match the one the server calculated."""

    code = "InvalidSignatureException"


class MissingAuthenticationTokenError(ServiceError):
    """The request carries no SigV4 authentication."""

    code = "MissingAuthenticationTokenException"


class IncompleteSignatureError(ServiceError):
    """The SigV4 authentication of the request is malformed."""

    code = "IncompleteSignatureException"


class RequestEntityTooLargeError(ServiceError):
    """The request body is larger than the server accepts (HTTP 413, read no further)."""

    code = "RequestEntityTooLargeException"
    status = 413


class SerializationError(ServiceError):
    """The request body could not be decoded."""

    code = "SerializationException"


class UnknownOperationError(ServiceError):
    """The operation named by the request does not exist."""

    code = "UnknownOperationException"


class ValidationError(ServiceError):
    """A request member breaks a rule of the model."""

    code = "ValidationException"


class AccessDeniedError(ServiceError):
    """The caller may not perform this operation."""

    code = "AccessDeniedException"


class InternalFailureError(ServiceError):
    """An unexpected server fault (HTTP 500; clients retry it)."""

    code = "InternalFailure"
    status = 500
