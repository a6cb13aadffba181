"""The configuration file, ``mailpacer.toml``: read, validated, frozen into a :class:`ConfigFile`.

Found at ``--config PATH``, else ``$MAILPACER_CONFIG``, else ``./mailpacer.toml``. Sections:
``[defaults]`` (with ``[defaults.retry]``), ``[routes.NAME]``, ``[groups]`` (a name for several
routes one campaign is spread over: ``NAME = ["office", "relay"]``) and ``[[rules]]`` (see
``examples/mailpacer.toml``). Every error names the file, the dotted key and its line. Passwords
are never in the file: a route names an environment variable or a secrets file.
:mod:`mailpacer.config.settings` merges this file with flags and environment.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from mailpacer.config.presets import get_preset
from mailpacer.config.tomlpos import KeyLines, dotted
from mailpacer.config.tomlpos import Path as KeyPath
from mailpacer.core.classify import Rule
from mailpacer.core.errors import ConfigError, UsageError
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import parse_route

CONFIG_ENV = "MAILPACER_CONFIG"
DEFAULT_NAME = "mailpacer.toml"

_TOP_KEYS = ("defaults", "routes", "groups", "rules")
_DEFAULT_KEYS = ("db", "from", "route", "uncertain", "check_dns", "retry")
_RETRY_KEYS = ("max_attempts", "max_age", "base_seconds", "cap_seconds")
_ROUTE_KEYS = (
    "url",
    "provider",
    "region",
    "username",
    "password_env",
    "password_file",
    "max_connections",
    "max_rate",
    "messages_per_connection",
    "daily_quota",
    "tls_verify",
    "cafile",
    "timeout",
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([a-z]+))?\s*$", re.I)
_PER_MINUTE = {
    "s": 60.0,
    "sec": 60.0,
    "second": 60.0,
    "m": 1.0,
    "min": 1.0,
    "minute": 1.0,
    "h": 1 / 60,
    "hour": 1 / 60,
    "d": 1 / 1440,
    "day": 1 / 1440,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.I)
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_rate(text: str) -> float:
    """``"120/min"``, ``"2/s"``, ``"5000/h"`` or ``"10000/day"`` → messages per minute.

    The unit is required: a bare ``"5"`` once meant 5 a minute without saying so (a run meant
    at 5/s took ten minutes). Raises :class:`ValueError` with a message that says what is
    expected.
    """
    match = _RATE.match(text)
    if match and match.group(2) is None:
        number = match.group(1)
        raise ValueError(
            f"{text!r} has no unit; write {number}/s, {number}/min, {number}/h or {number}/day"
        )
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _PER_MINUTE:
        raise ValueError(f"{text!r} is not a rate; expected e.g. 120/min, 2/s, 5000/h or 10000/day")
    per_minute = float(match.group(1)) * _PER_MINUTE[unit]
    if per_minute <= 0:
        raise ValueError(f"{text!r}: the rate must be greater than zero")
    return per_minute


def parse_duration(value: str | float) -> float:
    """``"2d"``, ``"36h"``, ``"90m"``, ``"45s"`` or a number of seconds → seconds (> 0)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; expected e.g. 45s, 90m, 36h or 2d")
        seconds = float(match.group(1)) * _SECONDS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"{value!r}: the duration must be greater than zero")
    return seconds


@dataclass(frozen=True)
class Defaults:
    """``[defaults]``: what ``send`` uses unless a flag or environment variable says otherwise."""

    db: str | None = None
    sender: str | None = None  #: the ``from`` key
    route: str | None = None  #: name of the route used when none is given
    uncertain: str | None = None  #: "resend" or "hold"
    check_dns: bool | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)  #: ``[defaults.retry]``


@dataclass(frozen=True)
class RouteConfig:
    """``[routes.NAME]``: where to send, credentials by reference, and ceilings."""

    name: str
    line: int | None = None  #: line of the route's table header
    url: str | None = None
    provider: str | None = None  #: a preset name (canonical, aliases resolved)
    region: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None  #: absolute (relative paths are taken from the file's folder)
    max_connections: int | None = None
    max_rate: float | None = None  #: messages per minute
    messages_per_connection: int | None = None
    daily_quota: int | None = None
    tls_verify: bool = True
    cafile: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class ConfigFile:
    """One validated ``mailpacer.toml``."""

    path: Path
    defaults: Defaults
    routes: Mapping[str, RouteConfig]
    rules: tuple[Rule, ...]  #: user reply rules, in file order (they go before the defaults)
    lines: KeyLines = field(repr=False, compare=False, default_factory=lambda: KeyLines(""))
    #: ``[groups]``: a name for several routes (of ``routes``), in the order given
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def where(self, path: KeyPath) -> str:
        """``file:line`` of a key (or just ``file``), to prefix messages."""
        line = self.lines.line_of(path)
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A :class:`ConfigError` located at ``path`` in this file."""
        line = self.lines.line_of(path)
        return ConfigError(
            f"{self.where(path)}: {dotted(path)}: {message}",
            key=dotted(path),
            line=line,
            file=str(self.path),
        )

    def default_route(self) -> RouteConfig | None:
        """``defaults.route`` (the first route of a group it names), else the only route, else
        None."""
        if self.defaults.route and self.defaults.route in self.groups:
            return self.routes[self.groups[self.defaults.route][0]]
        if self.defaults.route:
            return self.routes[self.defaults.route]
        if len(self.routes) == 1:
            return next(iter(self.routes.values()))
        return None


def find_config(
    flag: str | Path | None, env: Mapping[str, str], cwd: Path | None = None
) -> Path | None:
    """``--config PATH``, else ``$MAILPACER_CONFIG``, else ``./mailpacer.toml`` if it exists."""
    if flag:
        path = Path(flag).expanduser()
        if not path.is_file():
            raise ConfigError(f"--config {flag}: no such file", key="--config", file=str(flag))
        return path
    if env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV]).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={env[CONFIG_ENV]}: no such file", key=CONFIG_ENV)
        return path
    path = cwd / DEFAULT_NAME if cwd else Path(DEFAULT_NAME)
    return path if path.is_file() else None


def load_config(path: str | Path) -> ConfigFile:
    """Read and validate a config file; any problem raises :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 ({exc.reason})", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from None
    return parse_config(text, path)


def parse_config(text: str, path: str | Path = DEFAULT_NAME) -> ConfigFile:
    """Validate TOML ``text`` (``path`` only names it in messages and anchors relative paths)."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: invalid TOML: {exc}", line=line, file=str(path)) from None
    return _Reader(path, KeyLines(text)).read(data)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


class _Reader:
    """Validates the parsed TOML, one typed getter per kind of value."""

    def __init__(self, path: Path, lines: KeyLines) -> None:
        self.file = ConfigFile(path, Defaults(), {}, (), lines)
        self.base = path.parent.resolve()

    def fail(self, path: KeyPath, message: str) -> NoReturn:
        raise self.file.error(path, message)

    def table(self, value: object, path: KeyPath, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"expected a table, got {_kind(value)}")
        for key in value:
            if key == "password" and "password_env" in allowed:
                self.fail(
                    (*path, key),
                    "passwords are not kept in the config file; name an environment variable "
                    'with password_env = "MY_SMTP_PASSWORD" or a file with password_file = "path"',
                )
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail((*path, key), f"unknown key; {hint}known: {', '.join(allowed)}")
        return value

    def get(self, table: dict[str, Any], path: KeyPath, key: str, kind: type) -> Any:
        value = table.get(key)
        if value is None:
            return None
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            names = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}
            self.fail((*path, key), f"expected {names[kind]}, got {_kind(value)} ({value!r})")
        return value

    def positive(self, table: dict[str, Any], path: KeyPath, key: str, kind: type) -> Any:
        value = self.get(table, path, key, kind)
        if value is not None and value <= 0:
            self.fail((*path, key), f"must be greater than zero, got {value!r}")
        return value

    def local_path(self, text: str | None) -> str | None:
        if text is None:
            return None
        path = Path(text).expanduser()
        return str(path if path.is_absolute() else (self.base / path))

    def read(self, data: dict[str, Any]) -> ConfigFile:
        self.table(data, (), _TOP_KEYS)
        routes_data = self.table(data.get("routes", {}), ("routes",), tuple(data.get("routes", {})))
        routes = {name: self.route(name, value) for name, value in routes_data.items()}
        groups = self.groups(data.get("groups", {}), routes)
        defaults = self.defaults(data.get("defaults", {}), routes, groups)
        rules = self.rules(data.get("rules", []))
        return ConfigFile(
            self.file.path,
            defaults,
            MappingProxyType(routes),
            rules,
            self.file.lines,
            MappingProxyType(groups),
        )

    def groups(
        self, value: object, routes: Mapping[str, RouteConfig]
    ) -> dict[str, tuple[str, ...]]:
        """``[groups]``: each an array of route names, every one defined, none twice."""
        path: KeyPath = ("groups",)
        table = self.table(value, path, tuple(value) if isinstance(value, dict) else ())
        groups: dict[str, tuple[str, ...]] = {}
        for name, members in table.items():
            where: KeyPath = (*path, name)
            if name in routes:
                self.fail(where, f"{name!r} is already a route's name; give the group another")
            if not isinstance(members, list) or not members:
                self.fail(
                    where, f'expected an array of route names, e.g. ["a", "b"], got {members!r}'
                )
            for member in members:
                if not isinstance(member, str) or member not in routes:
                    known = ", ".join(routes) or "none are defined"
                    self.fail(where, f"no route {member!r} in [routes] (known: {known})")
                if members.count(member) > 1:
                    self.fail(where, f"route {member!r} is named twice; each only once")
            groups[name] = tuple(members)
        return groups

    def defaults(
        self,
        value: object,
        routes: Mapping[str, RouteConfig],
        groups: Mapping[str, tuple[str, ...]],
    ) -> Defaults:
        path: KeyPath = ("defaults",)
        table = self.table(value, path, _DEFAULT_KEYS)
        sender = self.get(table, path, "from", str)
        if sender is not None and ("@" not in sender or any(c in sender for c in "\r\n")):
            self.fail((*path, "from"), f"{sender!r} is not an address like 'HR <hr@example.com>'")
        route = self.get(table, path, "route", str)
        if route is not None and route not in routes and route not in groups:
            known = ", ".join([*routes, *groups]) or "none are defined"
            self.fail((*path, "route"), f"no route or group {route!r} in [routes] (known: {known})")
        uncertain = self.get(table, path, "uncertain", str)
        if uncertain is not None and uncertain not in ("resend", "hold"):
            self.fail((*path, "uncertain"), f'expected "resend" or "hold", got {uncertain!r}')
        db = self.get(table, path, "db", str)
        if db is not None and "://" not in db:
            db = self.local_path(db)
        return Defaults(
            db=db,
            sender=sender,
            route=route,
            uncertain=uncertain,
            check_dns=self.get(table, path, "check_dns", bool),
            retry=self.retry(table.get("retry", {})),
        )

    def retry(self, value: object) -> RetryPolicy:
        path: KeyPath = ("defaults", "retry")
        table = self.table(value, path, _RETRY_KEYS)
        given: dict[str, Any] = {
            "max_attempts": self.positive(table, path, "max_attempts", int),
            "base_seconds": self.positive(table, path, "base_seconds", float),
            "cap_seconds": self.positive(table, path, "cap_seconds", float),
        }
        max_age = table.get("max_age")
        if max_age is not None:
            try:
                if isinstance(max_age, bool) or not isinstance(max_age, str | int | float):
                    raise ValueError(f'expected a duration such as "2d", got {_kind(max_age)}')
                given["max_age_seconds"] = parse_duration(max_age)
            except ValueError as exc:
                self.fail((*path, "max_age"), str(exc))
        default = RetryPolicy()
        base = given["base_seconds"] or default.base_seconds
        cap = given["cap_seconds"] or default.cap_seconds
        if cap < base:
            key = "cap_seconds" if given["cap_seconds"] else "base_seconds"
            self.fail(
                (*path, key), f"cap_seconds ({cap:g}) must not be below base_seconds ({base:g})"
            )
        try:
            return RetryPolicy(**{k: v for k, v in given.items() if v is not None})
        except ConfigError as exc:  # e.g. base_seconds above the default cap
            key = {"max_age_seconds": "max_age"}.get(exc.key or "", exc.key or "")
            self.fail((*path, key) if key in table else path, str(exc))

    def route(self, name: str, value: object) -> RouteConfig:
        path: KeyPath = ("routes", name)
        table = self.table(value, path, _ROUTE_KEYS)
        url = self.get(table, path, "url", str)
        url_user = None
        if url is not None:
            try:
                parsed = parse_route(url, environ={})
            except UsageError as exc:
                self.fail((*path, "url"), str(exc).replace("--smtp ", "", 1))
            if parsed.password is not None:
                self.fail((*path, "url"), "the URL contains a password; use password_env instead")
            url_user = parsed.username
        provider = self.get(table, path, "provider", str)
        if provider is not None:
            try:
                preset = get_preset(provider)
            except ConfigError as exc:
                self.fail((*path, "provider"), str(exc))
            provider = preset.name
            if preset.needs_host and url is None:
                self.fail(path, f'provider {provider!r} needs url = "smtp+starttls://host:587"')
            if preset.needs_region and url is None and not table.get("region"):
                self.fail(path, f'provider {provider!r} needs region = "eu-west-1" (your region)')
        elif url is None:
            self.fail(path, 'needs url = "smtp+starttls://user@host:587" or provider = "NAME"')
        username = self.get(table, path, "username", str)
        if username and url_user and username != url_user:
            self.fail((*path, "username"), f"differs from the user in url ({url_user!r})")
        password_env = self.get(table, path, "password_env", str)
        if password_env is not None and not _ENV_NAME.fullmatch(password_env):
            self.fail((*path, "password_env"), f"{password_env!r} is not a variable name")
        if password_env and "password_file" in table:
            self.fail((*path, "password_file"), "give password_env or password_file, not both")
        rate_text = table.get("max_rate")
        max_rate = None
        if rate_text is not None:
            try:
                if isinstance(rate_text, bool) or not isinstance(rate_text, str | int | float):
                    raise ValueError(f'expected a rate such as "120/min", got {_kind(rate_text)}')
                max_rate = parse_rate(str(rate_text))
            except ValueError as exc:
                self.fail((*path, "max_rate"), str(exc))
        verify = self.get(table, path, "tls_verify", bool)
        return RouteConfig(
            name=name,
            line=self.file.lines.line_of(path),
            url=url,
            provider=provider,
            region=self.get(table, path, "region", str),
            username=username or url_user,
            password_env=password_env,
            password_file=self.local_path(self.get(table, path, "password_file", str)),
            max_connections=self.positive(table, path, "max_connections", int),
            max_rate=max_rate,
            messages_per_connection=self.positive(table, path, "messages_per_connection", int),
            daily_quota=self.positive(table, path, "daily_quota", int),
            tls_verify=True if verify is None else verify,
            cafile=self.local_path(self.get(table, path, "cafile", str)),
            timeout=self.positive(table, path, "timeout", float),
        )

    def rules(self, value: object) -> tuple[Rule, ...]:
        if not isinstance(value, list):
            self.fail(("rules",), f"expected [[rules]] tables, got {_kind(value)}")
        rules: list[Rule] = []
        for index, item in enumerate(value):
            path: KeyPath = ("rules", index)
            if not isinstance(item, dict):
                self.fail(path, f"expected a table, got {_kind(item)}")
            try:
                rules.append(Rule.from_mapping(item))
            except ConfigError as exc:
                key = exc.key.split(".")[-1] if exc.key else ""
                self.fail((*path, key) if key in item else path, str(exc))
        return tuple(rules)
