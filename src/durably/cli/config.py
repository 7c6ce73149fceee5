"""The command line's configuration: a file, then the environment, then flags.

The file is ``durably.toml``, or the ``[tool.durably]`` table of ``pyproject.toml``,
the nearest one from the current directory up (or the one ``--config`` or
``DURABLY_CONFIG`` names). Each environment variable is ``DURABLY_`` and the key in
capitals (``DURABLY_STORE``, ``DURABLY_RETENTION_COMPLETED``). A later source wins
over an earlier one, and each value remembers where it came from (``durably config``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durably.durations import parse_duration
from durably.stores.base import redact


class ConfigError(ValueError):
    """A configuration file or value is malformed: the message names where and what."""


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _names(value: Any) -> tuple[str, ...]:
    """A list of names, or one string of comma-separated names (as in the environment)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("must be a list of strings (or a comma-separated string)")
    names = tuple(i.strip() for i in items if i.strip())
    if not names:
        raise ValueError("must name at least one")
    return names


def _positive_int(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive integer, not {value!r}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be an integer of 0 or more, not {value!r}")
    return value


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _level(value: Any) -> str:
    level = _text(value).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {value!r}")
    return level


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return str(value)

    return check


#: Every key, with the check that turns a raw value into a typed one.
KEYS: dict[str, Callable[[Any], Any]] = {
    "store": _text,
    "app": _names,
    "worker_id": _text,
    "queues": _names,
    "workflows": _names,
    "log_level": _level,
    "log_format": _choice("text", "json"),
    "metrics_port": _count,
    "concurrency": _positive_int,
    "lease": _duration,
    "poll_interval": _duration,
    "shutdown_grace": _duration,
    "max_recoveries": _count,
    "output": _choice("table", "json", "jsonl", "ids"),
    "retention.completed": _duration,
    "retention.failed": _duration,
    "retention.cancelled": _duration,
    "retention.every": _duration,
    "retention.batch": _positive_int,
}


@dataclass(frozen=True, slots=True)
class Setting:
    value: Any
    source: str  # "durably.toml", "env DURABLY_STORE", "--store"


class Config:
    """The effective configuration: each key's value and where it came from."""

    def __init__(self, settings: Mapping[str, Setting], file: Path | None) -> None:
        self.settings = dict(settings)
        self.file = file

    def get(self, key: str, default: Any = None) -> Any:
        setting = self.settings.get(key)
        return default if setting is None else setting.value

    def given(self, key: str) -> bool:
        return key in self.settings

    def retention(self) -> dict[str, Any] | None:
        """The keyword arguments of :class:`durably.Retention`, if any key is set."""
        given = {k.split(".")[1]: s.value for k, s in self.settings.items() if "." in k}
        return given or None

    def shown(self) -> dict[str, Setting]:
        """The settings as ``durably config`` prints them: passwords masked."""
        return {
            key: Setting(redact(s.value) if key == "store" else s.value, s.source)
            for key, s in sorted(self.settings.items())
        }


def load(flags: Mapping[str, Any], config_file: str | None = None) -> Config:
    """The configuration from the file, the environment and ``flags`` (``None``: unset).

    Raises:
        ConfigError: a file that cannot be read or parsed, an unknown key, a bad value.
    """
    settings: dict[str, Setting] = {}
    path = Path(config_file) if config_file else _find(Path.cwd())
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    if path is not None:
        for key, value in _read_file(path).items():
            settings[key] = _checked(key, value, f"{path}", f"{_where(path)} key {key!r}")
        if "store" in settings:  # a relative path is the file's neighbour, from anywhere
            store = settings["store"]
            settings["store"] = Setting(_beside(path, store.value), store.source)
    for key in KEYS:
        variable = "DURABLY_" + key.replace(".", "_").upper()
        if os.environ.get(variable, "").strip():
            value = os.environ[variable]
            settings[key] = _checked(key, value, f"env {variable}", f"${variable}")
    for key, value in flags.items():
        if value is not None and value != ():
            flag = "--" + key.replace("_", "-")
            settings[key] = _checked(key, value, flag, flag)
    return Config(settings, path)


def _beside(path: Path, store: str) -> str:
    """A SQLite path of a configuration file, relative to the file's folder."""
    if "://" in store or store.startswith(("sqlite:", ":memory:")) or Path(store).is_absolute():
        return store
    return str(path.parent.resolve() / store)


def _checked(key: str, value: Any, source: str, where: str) -> Setting:
    try:
        return Setting(KEYS[key](value), source)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _find(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        own = folder / "durably.toml"
        if own.is_file():
            return own
        project = folder / "pyproject.toml"
        if project.is_file() and _declares_durably(project):
            return project
    return None


def _declares_durably(project: Path) -> bool:
    """Whether a ``pyproject.toml`` has a ``[tool.durably]`` table. One that does not
    mention durably is not read as TOML: a broken one of another project is not ours."""
    try:
        if "durably" not in project.read_text(errors="replace"):
            return False
    except OSError:
        return False
    tool = _parse(project).get("tool", {})
    return isinstance(tool, dict) and "durably" in tool


def _where(path: Path) -> str:
    return f"{path} [tool.durably]" if path.name == "pyproject.toml" else str(path)


def _parse(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _read_file(path: Path) -> dict[str, Any]:
    """The file's keys, flattened (``retention.completed``), unknown ones refused."""
    data: Any = _parse(path)
    if path.name == "pyproject.toml" or "tool" in data:
        tool = data.get("tool", {})
        data = tool.get("durably", {}) if isinstance(tool, dict) else tool
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(path)} must be a table")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "retention" and isinstance(value, dict):
            flat.update({f"retention.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    unknown = sorted(set(flat) - set(KEYS))
    if unknown:
        known = ", ".join(k for k in KEYS if "." not in k) + ", [retention] completed/failed/..."
        raise ConfigError(f"{_where(path)}: unknown key {unknown[0]!r} (the keys: {known})")
    return flat
