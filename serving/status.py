"""gRPC status codes for what goes wrong: caller mistakes are never INTERNAL."""

from __future__ import annotations

import logging
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from graphstore import GraphStoreError, InvalidInput
from serving.types import BadRequest, NotFound, NotReady

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)


class Failure(Exception):
    """A request ends with this status ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def parse(request_type: type[M], raw: bytes) -> M:
    """The request message in ``raw``; bytes that are not one are the caller's mistake."""
    try:
        return request_type.FromString(raw)
    except DecodeError as exc:
        raise BadRequest(f"not a valid {request_type.__name__}: {exc}") from None


def failure_of(exc: Exception) -> Failure:
    """The status a failed request gets: caller mistakes are never INTERNAL."""
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, TimeoutError):
        return Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    if isinstance(exc, BadRequest | InvalidInput):
        return Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, NotFound):
        return Failure(grpc.StatusCode.NOT_FOUND, str(exc.args[0]))
    if isinstance(exc, NotReady):
        return Failure(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, GraphStoreError | OSError):
        log.warning("graph store unavailable: %s", exc)
        return Failure(grpc.StatusCode.UNAVAILABLE, f"graph store unavailable: {exc}")
    if type(exc).__name__ in ("ServiceUnavailable", "SessionExpired"):  # neo4j driver
        return Failure(grpc.StatusCode.UNAVAILABLE, f"graph store: {exc}")
    log.error("request failed", exc_info=exc)
    return Failure(grpc.StatusCode.INTERNAL, "internal error; see the server log")
