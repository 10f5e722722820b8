"""The exceptions CML Fleet raises on purpose, each with a sentence to act on."""

from __future__ import annotations


class FleetError(Exception):
    """Base class for every error CML Fleet raises on purpose."""


class ConfigError(FleetError):
    """A setting is missing or malformed; the message names the variable."""


class AWSError(FleetError):
    """An AWS call failed; carries the AWS error code and message."""

    def __init__(self, code: str, message: str, operation: str = "") -> None:
        self.code = code
        self.message = message
        self.operation = operation
        where = f"{operation}: " if operation else ""
        super().__init__(f"{where}{code}: {message}")


class CMLError(FleetError):
    """A call to a worker's CML API failed."""


class CMLUnreachable(CMLError):
    """The controller did not answer in time or refused the connection."""


class CMLAuthenticationFailed(CMLError):
    """The controller rejected the configured credentials."""


class CMLNotPermitted(CMLError):
    """The controller answered 403: the account may not do this."""


class CMLUnexpectedResponse(CMLError):
    """The controller answered with a status or body we cannot use."""

    def __init__(self, status: int, description: str) -> None:
        self.status = status
        self.description = description
        super().__init__(f"unexpected response {status}: {description}")


class NotFound(FleetError):
    """A worker, lab or user that was asked for does not exist."""


class Conflict(FleetError):
    """The request cannot be carried out in the resource's current state."""
