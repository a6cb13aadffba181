"""One run's settings, resolved once at the edge: flags > environment > config file > defaults.

:func:`resolve` is pure (flags, environment and the parsed file are arguments), so precedence is
tested without touching ``os.environ``; :func:`load_settings` is the edge that finds the file.
One exception to the order: a route's own ``password_env`` / ``password_file`` wins over
``MAILPACER_SMTP_PASSWORD``, which is only the fallback for routes that name no password.

A campaign may be spread over a group of routes: ``--smtp`` or ``--route`` given several times,
or ``--route NAME`` / ``defaults.route`` naming a ``[groups]`` entry of the file. Ceilings given
as flags or variables then bind each route of the group.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mailpacer.config.campaign import CampaignSettings, RouteEntry
from mailpacer.config.file import ConfigFile, RouteConfig, find_config, load_config, parse_rate
from mailpacer.config.presets import DAY, get_preset
from mailpacer.core.classify import Rule
from mailpacer.core.errors import ConfigError, UsageError
from mailpacer.core.limits import Limits
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import PASSWORD_ENV, PASSWORD_FILE_ENV, Route, parse_route

ENV = {
    "db": "MAILPACER_DB",
    "from": "MAILPACER_FROM",
    "smtp": "MAILPACER_SMTP",
    "route": "MAILPACER_ROUTE",
    "provider": "MAILPACER_PROVIDER",
    "region": "MAILPACER_REGION",
    "username": "MAILPACER_SMTP_USERNAME",
    "cafile": "MAILPACER_CAFILE",
    "max_connections": "MAILPACER_MAX_CONNECTIONS",
    "max_rate": "MAILPACER_MAX_RATE",
    "messages_per_connection": "MAILPACER_MESSAGES_PER_CONNECTION",
    "daily_quota": "MAILPACER_DAILY_QUOTA",
    "uncertain": "MAILPACER_UNCERTAIN",
    "check_dns": "MAILPACER_CHECK_DNS",
}  #: setting → environment variable (plus MAILPACER_CONFIG and the password variables)
FLAGS = frozenset(
    {*ENV, "config", "insecure_tls", "hold_uncertain"}
)  #: keys :func:`resolve` accepts in ``flags`` (None / False = not given)
_CEILINGS = {  # config / flag / env name → Limits field
    "max_connections": "connections",
    "max_rate": "rate_per_minute",
    "messages_per_connection": "messages_per_connection",
    "daily_quota": "quota",
}


@dataclass(frozen=True)
class Settings:
    """Everything resolved for one run; ``origins`` says where each value came from."""

    db: str
    sender: str | None
    route: Route | None
    route_label: str | None  #: "route 'office' (office365)", "--smtp URL", "provider gmail"
    provider: str | None
    ceilings: Limits | None
    retry: RetryPolicy
    resend_uncertain: bool
    check_dns: bool
    rules: tuple[Rule, ...]  #: user rules only; ``classify.rules_with(rules)`` adds the defaults
    config: ConfigFile | None = field(default=None, repr=False)
    origins: Mapping[str, str] = field(default_factory=dict, repr=False)
    password_env: str | None = None  #: the route's password reference, kept for ``resume``
    password_file: str | None = None
    more_routes: tuple[RouteEntry, ...] = ()  #: the other routes of a group, each with its own

    def campaign(
        self,
        *,
        recipients: Path,
        template: Path,
        skip_invalid: bool = False,
        name: str | None = None,
        priority: int = 0,
        encoding: str | None = None,
        delimiter: str | None = None,
        unsubscribe_url: str | None = None,
    ) -> CampaignSettings:
        """The settings of one campaign sent with these settings (stored with it)."""
        return CampaignSettings(
            recipients=recipients,
            template=template,
            route=self.require_route(),
            sender=self.require_sender(),
            ceilings=self.ceilings,
            rules=self.rules,
            retry=self.retry,
            resend_uncertain=self.resend_uncertain,
            skip_invalid=skip_invalid,
            check_dns=self.check_dns,
            name=name,
            priority=priority,
            password_env=self.password_env,
            password_file=self.password_file,
            encoding=encoding,
            delimiter=delimiter,
            unsubscribe_url=unsubscribe_url,
            more_routes=self.more_routes,
        )

    def require_route(self) -> Route:
        """The route, or a :class:`UsageError` that says how to give one."""
        if self.route is None:
            raise UsageError(
                "no route: give --smtp URL, --provider NAME or --route NAME "
                "(or [routes] in mailpacer.toml)"
            )
        return self.route

    def require_sender(self) -> str:
        """The sender, or a :class:`UsageError` that says how to give one."""
        if not self.sender:
            raise UsageError("no sender: give --from, set MAILPACER_FROM or defaults.from")
        return self.sender


def _env_value(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(ENV[key], "").strip()
    return value or None


def _number(text: Any, name: str, key: str) -> Any:
    """A flag or env value for ``key`` (a ceiling), parsed; errors name where it came from."""
    try:
        if key == "max_rate":
            return parse_rate(str(text))
        value = int(text)
        if value < 1:
            raise ValueError("must be at least 1")
        return value
    except ValueError as exc:
        detail = str(exc) if key == "max_rate" else "expected a whole number ≥ 1"
        raise ConfigError(f"{name}={text!r}: {detail}", key=name) from None


def _origin_name(origin: str, key: str) -> str:
    return f"--{key.replace('_', '-')}" if origin == "flag" else ENV[key]


def _pick(
    key: str, flags: Mapping[str, Any], env: Mapping[str, str], file_value: Any, file_origin: str
) -> tuple[Any, str]:
    """The first of flag, environment, file that is set, and where it came from."""
    if flags.get(key) not in (None, ""):
        return flags[key], f"flag --{key.replace('_', '-')}"
    if _env_value(env, key) is not None:
        return _env_value(env, key), f"env {ENV[key]}"
    if file_value is not None:
        return file_value, file_origin
    return None, "default"


def _password(rc: RouteConfig, env: Mapping[str, str], file: ConfigFile | None) -> str | None:
    """The route's password from its reference, else from MAILPACER_SMTP_PASSWORD(_FILE)."""
    path = ("routes", rc.name)
    if rc.password_env:
        return env.get(rc.password_env) or None
    secret = rc.password_file or (None if env.get(PASSWORD_ENV) else env.get(PASSWORD_FILE_ENV))
    if secret:
        try:
            return Path(secret).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            message = f"cannot read password file {secret}: {exc.strerror}"
            if rc.password_file and file is not None:
                raise file.error((*path, "password_file"), message) from None
            raise ConfigError(f"{PASSWORD_FILE_ENV}: {message}", key=PASSWORD_FILE_ENV) from None
    return env.get(PASSWORD_ENV) or None


def route_label(rc: RouteConfig) -> str:
    """``route 'office' (office365)``."""
    return f"route {rc.name!r}" + (f" ({rc.provider})" if rc.provider else "")


def endpoint_of(rc: RouteConfig) -> Route:
    """The route of ``[routes.NAME]`` without its password: host, port, TLS, username, options."""
    preset = get_preset(rc.provider) if rc.provider else None
    if rc.url:
        route = parse_route(rc.url, environ={})
    elif preset is not None:
        route = preset.endpoint(region=rc.region)
    else:  # pragma: no cover - the file reader requires url or provider
        raise ConfigError(f"{route_label(rc)}: needs url or provider")
    return dataclasses.replace(
        route,
        username=rc.username or (preset.default_username if preset else None),
        verify_tls=rc.tls_verify,
        cafile=rc.cafile,
        timeout=rc.timeout if rc.timeout is not None else route.timeout,
    )


def route_from_config(
    rc: RouteConfig, env: Mapping[str, str], file: ConfigFile | None = None, *, label: str = ""
) -> tuple[Route, Limits | None]:
    """The :class:`Route` of ``[routes.NAME]`` with its password, and its ceilings.

    A username without a password raises :class:`ConfigError` naming the variable to set.
    """
    route = endpoint_of(rc)
    password = _password(rc, env, file)
    if route.username and not password:
        key = ("routes", rc.name, "password_env") if rc.password_env else ("routes", rc.name)
        if rc.password_env:
            how = f"set {rc.password_env} (named by password_env)"
        elif file is None:
            how = f"set {PASSWORD_ENV} (or {PASSWORD_FILE_ENV})"
        else:
            how = f'set {PASSWORD_ENV} or password_env = "..." in [routes.{rc.name}]'
        preset = get_preset(rc.provider) if rc.provider else None
        hint = f"; for {preset.name} that is {preset.credential_hint}" if preset else ""
        raise ConfigError(
            (f"{file.where(key)}: " if file else "")
            + f"{label or route_label(rc)} needs a password: {how}{hint}",
            key=rc.password_env or PASSWORD_ENV,
            line=file.lines.line_of(key) if file else None,
            file=str(file.path) if file else None,
        )
    values, _ = ceilings_of(rc, file)
    return dataclasses.replace(route, password=password), _make_limits(values)


def ceilings(rc: RouteConfig) -> Limits | None:
    """The route's ceilings: its preset's published limits, overridden by the route's own keys."""
    return _make_limits(ceilings_of(rc)[0])


def ceilings_of(
    rc: RouteConfig, file: ConfigFile | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The route's ceilings as :class:`Limits` fields, and where each came from (preset or file)."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if rc.provider:
        values = _limits_fields(get_preset(rc.provider).limits)
        origins = {
            key: f"preset {rc.provider}" for key, name in _CEILINGS.items() if name in values
        }
    for key, name in _CEILINGS.items():
        if getattr(rc, key) is not None:
            values[name] = getattr(rc, key)
            origins[key] = f"file {file.where(('routes', rc.name, key))}" if file else "route"
            if name == "quota":
                values["quota_window_seconds"] = DAY
    return values, origins


def _limits_fields(limits: Limits) -> dict[str, Any]:
    names = (
        "connections",
        "rate_per_minute",
        "messages_per_connection",
        "quota",
        "quota_window_seconds",
    )
    return {n: getattr(limits, n) for n in names if getattr(limits, n) is not None}


def _make_limits(values: Mapping[str, Any]) -> Limits | None:
    given = {k: v for k, v in values.items() if v is not None}
    if "quota" in given:
        given.setdefault("quota_window_seconds", DAY)
    else:
        given.pop("quota_window_seconds", None)
    return Limits(**given) if given else None


@dataclass(frozen=True)
class _Choice:
    """The route one layer names, with its ceilings and where they came from."""

    route: Route | None = None
    ceilings: dict[str, Any] = field(default_factory=dict)
    ceiling_origins: dict[str, str] = field(default_factory=dict)
    label: str | None = None
    provider: str | None = None
    origin: str = "default"
    password_env: str | None = None
    password_file: str | None = None


def _from_config(
    rc: RouteConfig, env: Mapping[str, str], file: ConfigFile | None, origin: str, label: str = ""
) -> _Choice:
    label = label or route_label(rc)
    route, _ = route_from_config(rc, env, file, label=label)
    values, origins = ceilings_of(rc, file)
    return _Choice(
        route, values, origins, label, rc.provider, origin, rc.password_env, rc.password_file
    )


def _several(value: Any) -> list[str]:
    """A flag given once (text) or several times (a sequence), as a list of text."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if v not in (None, "")]


def _choose_routes(
    flags: Mapping[str, Any], env: Mapping[str, str], file: ConfigFile | None
) -> list[_Choice]:
    """The highest layer (flags, environment, file) that names a route (or a group) decides it:
    one choice per route, in the order given; the same route twice is refused."""
    for origin in ("flag", "env"):
        if origin == "flag":
            smtps, names = _several(flags.get("smtp")), _several(flags.get("route"))
            provider = flags.get("provider") or None
        else:
            smtps, names = _several(_env_value(env, "smtp")), _several(_env_value(env, "route"))
            provider = _env_value(env, "provider")
        if names and (smtps or provider):
            other = _origin_name(origin, "smtp" if smtps else "provider")
            raise UsageError(
                f"{_origin_name(origin, 'route')} and {other} both name a route; give one"
            )
        if len(smtps) > 1 and provider:
            raise UsageError(
                f"{_origin_name(origin, 'provider')} names one route; with several"
                f" {_origin_name(origin, 'smtp')}, put each in [routes] of mailpacer.toml"
                " and give --route for each"
            )
        if names:
            return _unique([c for name in names for c in _named(name, origin, env, file)])
        if smtps:
            return _unique([_choose_route({**flags, "smtp": u}, env, origin) for u in smtps])
        if provider:
            return [_choose_route(flags, env, origin)]
    default = file.default_route() if file else None
    if file is not None and file.defaults.route in file.groups:
        return _unique(_named(str(file.defaults.route), "file", env, file))
    if default is None or file is None:
        return [_Choice()]
    return [_from_config(default, env, file, f"file {file.where(('routes', default.name))}")]


def _named(
    name: str, origin: str, env: Mapping[str, str], file: ConfigFile | None
) -> list[_Choice]:
    """The route ``[routes.NAME]``, or every route of the group ``[groups] NAME``."""
    where = "defaults.route" if origin == "file" else _origin_name(origin, "route")
    if file is not None and name in file.groups:
        return [
            _from_config(file.routes[member], env, file, f"{origin} {name}")
            for member in file.groups[name]
        ]
    if file is None or name not in file.routes:
        known = ", ".join([*(file.routes if file else ()), *(file.groups if file else ())])
        raise ConfigError(
            f"{where}={name}: no such route or group (known: {known or 'no config file'})",
            key=where,
        )
    return [_from_config(file.routes[name], env, file, f"{origin} {name}")]


def _unique(choices: list[_Choice]) -> list[_Choice]:
    """The choices, or a :class:`UsageError` naming a route given twice."""
    seen: dict[str, str] = {}
    for choice in choices:
        if choice.route is None:
            continue
        key = choice.route.key
        if key in seen:
            raise UsageError(
                f"{key} is given twice ({seen[key]}, {choice.label}); each route of a group"
                " must be a different server or account"
            )
        seen[key] = choice.label or key
    return choices


def _choose_route(flags: Mapping[str, Any], env: Mapping[str, str], origin: str) -> _Choice:
    """One route from ``--smtp`` / ``--provider`` (or their variables) at the ``origin`` layer."""
    get = (lambda k: flags.get(k) or None) if origin == "flag" else (lambda k: _env_value(env, k))
    smtp, provider = get("smtp"), get("provider")
    username = flags.get("username") or _env_value(env, "username")
    if smtp:
        route = parse_route(str(smtp), environ=dict(env))
        if username and route.username is None:
            route = dataclasses.replace(route, username=username)
        if route.username and not route.password:
            raise ConfigError(
                f"{route.url} needs a password: set {PASSWORD_ENV} (or {PASSWORD_FILE_ENV})",
                key=PASSWORD_ENV,
            )
        preset = get_preset(provider) if provider else None
        values = _limits_fields(preset.limits) if preset else {}
        origins = {k: f"preset {provider}" for k, n in _CEILINGS.items() if n in values}
        return _Choice(
            route,
            values,
            origins,
            route.url,
            preset.name if preset else None,
            f"{origin} {_origin_name(origin, 'smtp')}",
        )
    if provider:
        preset = get_preset(provider)
        region = flags.get("region") or _env_value(env, "region")
        rc = RouteConfig(name=preset.name, provider=preset.name, region=region, username=username)
        where = f"{origin} {_origin_name(origin, 'provider')}"
        return _from_config(rc, env, None, where, f"provider {preset.name}")
    return _Choice()


def resolve(flags: Mapping[str, Any], env: Mapping[str, str], file: ConfigFile | None) -> Settings:
    """Merge flags > environment > file > defaults into one frozen :class:`Settings`.

    ``flags`` uses the keys in :data:`FLAGS` (``None``/``False``: not given); ``env`` is a plain
    mapping such as ``os.environ``. Errors name the flag, variable or file line at fault.
    """
    unknown = set(flags) - FLAGS
    if unknown:
        raise TypeError(f"unknown flag keys: {sorted(unknown)}")
    defaults = file.defaults if file else None

    def where(key: str) -> str:
        return f"file {file.where(('defaults', key))}" if file else "file"

    origins: dict[str, str] = {}

    db, origins["db"] = _pick("db", flags, env, defaults and defaults.db, where("db"))
    if db is None:
        base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        db = str(Path(base) / "mailpacer" / "mailpacer.db")
    sender, origins["from"] = _pick("from", flags, env, defaults and defaults.sender, where("from"))

    choices = _choose_routes(flags, env, file)
    choice = choices[0]
    route, origins["route"] = _tls_options(choice.route, flags, env), choice.origin
    given: dict[str, Any] = {}  #: ceilings from flags or variables: they bind every route
    for key, name in _CEILINGS.items():
        for origin, text in (("flag", flags.get(key)), ("env", _env_value(env, key))):
            if text not in (None, ""):
                given[name] = _number(text, _origin_name(origin, key), key)
                if name == "quota":
                    given["quota_window_seconds"] = DAY
                origins[key] = f"{origin} {_origin_name(origin, key)}"
                break
        else:
            origins[key] = choice.ceiling_origins.get(key, "default")
    values = {**choice.ceilings, **given}
    more_routes = tuple(
        RouteEntry(
            _tls_options(other.route, flags, env) or other.route,
            _make_limits({**other.ceilings, **given}),
            other.password_env,
            other.password_file,
        )
        for other in choices[1:]
        if other.route is not None
    )

    if flags.get("hold_uncertain"):
        uncertain, origins["uncertain"] = "hold", "flag --hold-uncertain"
    else:
        file_uncertain = defaults and defaults.uncertain
        uncertain, origins["uncertain"] = _pick(
            "uncertain", {}, env, file_uncertain, where("uncertain")
        )
    if uncertain not in (None, "resend", "hold"):
        raise ConfigError(
            f"{ENV['uncertain']}={uncertain!r}: expected resend or hold", key=ENV["uncertain"]
        )

    check_dns, origins["check_dns"] = _pick(
        "check_dns",
        {"check_dns": flags.get("check_dns") or None},
        env,
        defaults and defaults.check_dns,
        where("check_dns"),
    )
    if isinstance(check_dns, str):
        if check_dns.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(
                f"{ENV['check_dns']}={check_dns!r}: expected 1/0, true/false or yes/no",
                key=ENV["check_dns"],
            )
        check_dns = check_dns.lower() in ("1", "true", "yes")

    return Settings(
        db=str(db),
        sender=sender,
        route=route,
        route_label=" + ".join(c.label or "" for c in choices)
        if len(choices) > 1
        else choice.label,
        provider=choice.provider,
        ceilings=_make_limits(values),
        retry=defaults.retry if defaults else RetryPolicy(),
        resend_uncertain=uncertain != "hold",
        check_dns=bool(check_dns),
        rules=file.rules if file else (),
        config=file,
        origins=MappingProxyType(origins),
        password_env=choice.password_env,
        password_file=choice.password_file,
        more_routes=more_routes,
    )


def _tls_options(
    route: Route | None, flags: Mapping[str, Any], env: Mapping[str, str]
) -> Route | None:
    """``route`` with ``--cafile`` / ``--insecure-tls`` (or their variables) applied."""
    if route is None:
        return None
    cafile = flags.get("cafile") or _env_value(env, "cafile")
    if cafile:
        route = dataclasses.replace(route, cafile=str(cafile))
    if flags.get("insecure_tls"):
        route = dataclasses.replace(route, verify_tls=False)
    return route


def load_settings(
    flags: Mapping[str, Any], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Settings:
    """The edge: find the config file (``flags["config"]``, $MAILPACER_CONFIG, ./mailpacer.toml),
    load it, and :func:`resolve` against ``env`` (default: the process environment)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    path = find_config(flags.get("config"), environ, cwd)
    return resolve(flags, environ, load_config(path) if path else None)
