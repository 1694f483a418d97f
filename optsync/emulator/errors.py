"""The one exception the emulator raises to answer a request the way Salesforce does.

A single type keeps every layer (SOQL, storage, routes) honest about the wire: whoever
raises it decides the HTTP status, the ``errorCode`` and the message, and the routes only
choose the body shape (REST array, collection ``statusCode`` entry, Bulk ``sf__Error``).
"""

from __future__ import annotations

from typing import Any


class SalesforceError(Exception):
    """A Salesforce API error with its HTTP status, ``errorCode`` and message."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def rest_body(self) -> list[dict[str, Any]]:
        """The REST error array: ``[{"message","errorCode","fields"}]``."""
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            entry["fields"] = self.fields
        return [entry]

    def save_error(self) -> dict[str, Any]:
        """The per-record error of sObject Collections: ``{"statusCode","message","fields"}``."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def bulk_error(self) -> str:
        """The Bulk 2.0 ``sf__Error`` text: ``CODE:message:fields --``."""
        fields = ",".join(self.fields)
        return f"{self.code}:{self.message}:{fields + ' ' if fields else ''}--"
