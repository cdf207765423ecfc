"""Typed, checked access to decoded JSON objects (commands and snapshots)."""

from __future__ import annotations

from typing import Any


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class Fields:
    """Reads fields of a JSON object; a missing field or a wrong type raises ValueError
    naming `context` (for example "metadata command 'create_topic'") and the field."""

    def __init__(self, context: str, obj: Any) -> None:
        if not isinstance(obj, dict):
            raise ValueError(f"{context} must be a JSON object, got {type(obj).__name__}")
        self.context = context
        self.obj: dict[str, Any] = obj

    def _get(self, key: str) -> Any:
        if key not in self.obj:
            raise ValueError(f"{self.context} is missing field {key!r}")
        return self.obj[key]

    def _bad(self, key: str, expected: str) -> ValueError:
        return ValueError(
            f"{self.context}: field {key!r} must be {expected}, got {self.obj[key]!r}")

    def get_int(self, key: str) -> int:
        value = self._get(key)
        if not is_int(value):
            raise self._bad(key, "an integer")
        return int(value)

    def get_bool(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def get_str(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def get_str_or(self, key: str, default: str) -> str:
        """A string field that older versions did not write."""
        if key not in self.obj:
            return default
        return self.get_str(key)

    def get_int_or(self, key: str, default: int) -> int:
        """An integer field that older versions did not write."""
        if key not in self.obj:
            return default
        return self.get_int(key)

    def get_opt_str(self, key: str) -> str | None:
        value = self._get(key)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string or null")
        return value

    def get_ints(self, key: str) -> tuple[int, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(is_int(x) for x in value):
            raise self._bad(key, "a list of integers")
        return tuple(value)

    def get_opt_ints(self, key: str) -> tuple[int, ...] | None:
        return None if self._get(key) is None else self.get_ints(key)

    def get_int_lists(self, key: str) -> tuple[tuple[int, ...], ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(
                isinstance(row, list) and all(is_int(x) for x in row) for row in value):
            raise self._bad(key, "a list of lists of integers")
        return tuple(tuple(row) for row in value)

    def get_str_map(self, key: str) -> dict[str, str]:
        value = self._get(key)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._bad(key, "an object of strings")
        return dict(value)

    def get_list(self, key: str) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value
