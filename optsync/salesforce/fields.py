"""Is the opt-out field usable? The describe-based check, as pure code.

Describe lists only the fields the running user can *see* (field-level security), marks
read-only ones ``updateable: false``, and reports checkboxes as ``type: "boolean"``. So
one describe per object answers all three questions a push depends on, and a hidden
field is indistinguishable from a missing one — the fix says both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optsync.domain.failures import FIX_FIELD_READ_ONLY, FIX_INVALID_FIELD


@dataclass(frozen=True)
class FieldCheck:
    """The verdict on one field of one object; ``ok`` iff it exists, is a checkbox and is
    updateable by the integration user."""

    object: str
    field: str
    exists: bool
    updateable: bool
    type: str | None
    label: str | None
    ok: bool
    problem: str | None
    fix: str | None


def check_describe(obj: str, field: str, describe: dict[str, Any]) -> FieldCheck:
    """Judge ``field`` from ``obj``'s describe result (API names are case-insensitive)."""
    entry = None
    for candidate in describe.get("fields") or []:
        if isinstance(candidate, dict) and str(candidate.get("name", "")).lower() == field.lower():
            entry = candidate
            break
    if entry is None:
        return FieldCheck(
            obj,
            field,
            False,
            False,
            None,
            None,
            False,
            f"{field} does not exist on {obj}, or field-level security hides it from the "
            "integration user.",
            FIX_INVALID_FIELD,
        )
    name = str(entry.get("name") or field)
    ftype = str(entry.get("type") or "")
    label = entry.get("label")
    updateable = bool(entry.get("updateable"))
    if ftype != "boolean":
        return FieldCheck(
            obj,
            name,
            True,
            updateable,
            ftype,
            label,
            False,
            f"{obj}.{name} is a {ftype or 'non-checkbox'} field, not a checkbox.",
            "Choose a Checkbox field for opt-outs, or create one (type Checkbox) on Contact "
            "and Lead and select it in the unsubscribe-sync settings.",
        )
    if not updateable:
        return FieldCheck(
            obj,
            name,
            True,
            False,
            ftype,
            label,
            False,
            f"{obj}.{name} is read-only for the integration user.",
            FIX_FIELD_READ_ONLY,
        )
    return FieldCheck(obj, name, True, True, ftype, label, True, None, None)
