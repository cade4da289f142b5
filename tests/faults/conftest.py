"""The fault tests reuse serving's trained embedded world (a session fixture)."""

from tests.serving.conftest import world

__all__ = ["world"]
