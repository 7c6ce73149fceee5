"""Names and ids: what a workflow, step, queue, run, key, signal or event may be called.

One rule on every backend: a string of 1 to 200 characters, not only spaces, with
no NUL character (PostgreSQL text cannot hold one) and valid Unicode (no lone
surrogate: no database stores one). A name that breaks it is the caller's
``ValueError``, at the call, before anything is written.
"""

from __future__ import annotations

MAX_LENGTH = 200


def check_name(kind: str, value: object) -> str:
    """``value`` if it is a usable name; a :class:`ValueError` naming ``kind`` otherwise."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LENGTH:
        raise ValueError(
            f"{kind} must be a non-blank string of at most {MAX_LENGTH} characters, not {value!r}"
        )
    if "\x00" in value:
        raise ValueError(f"{kind} must not contain a NUL character: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{kind} is not valid Unicode (a lone surrogate?): {value!r}") from None
    return value


def check_optional(kind: str, value: object) -> str | None:
    """``None``, or a name that passes :func:`check_name`."""
    return None if value is None else check_name(kind, value)
