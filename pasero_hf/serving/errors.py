"""Errors that become HTTP responses, in TGI's shape `{"error": ..., "error_type": ...}`.

`huggingface_hub.InferenceClient` turns `error_type` into its own exceptions: "validation" -> ValidationError,
"generation" -> GenerationError, "overloaded" -> OverloadedError.
"""

from __future__ import annotations


class RequestError(Exception):
    """A request that cannot be served: `status` is its HTTP status, `message` names the field at fault."""

    def __init__(self, status: int, message: str, error_type: str = "validation"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type

    def body(self) -> dict[str, str]:
        return {"error": self.message, "error_type": self.error_type}


def invalid(message: str) -> RequestError:
    """422, the status TGI gives every input validation error (its messages start with the same words)."""
    return RequestError(422, f"Input validation error: {message}", "validation")


class GenerationCancelled(Exception):
    """Raised inside the search (by the streamer) when the client went away or a stop sequence ended the output."""
