"""OpenDeploy: a self-hosted deployment service that speaks the AWS CodeDeploy API."""

__version__ = "0.1.0"
