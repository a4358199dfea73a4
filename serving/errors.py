"""Errors the service turns into 4xx/5xx responses; each names what is wrong."""

from __future__ import annotations

from prefect_mlops.errors import MlopsError


class ServingError(MlopsError):
    """Base of the errors raised while answering a request."""

    status_code = 500


class InputError(ServingError):
    """The request does not match the model's signature; `field` names where."""

    status_code = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PayloadTooLargeError(InputError):
    """The body exceeds the configured size limit."""

    status_code = 413


class UnsupportedMediaTypeError(InputError):
    """The body's content type is not one the route reads."""

    status_code = 415


class UnknownModelError(ServingError):
    """The request names a model this service does not serve."""

    status_code = 404


class NotReadyError(ServingError):
    """No model is loaded (yet); the reason says why."""

    status_code = 503
