"""mailpacer.toml: validation with key and line, precedence flags > env > file > defaults."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpacer.config.file import ConfigFile, find_config, parse_config, parse_duration, parse_rate
from mailpacer.config.settings import resolve, route_from_config
from mailpacer.config.tomlpos import KeyLines, dotted
from mailpacer.core.classify import Phase, Reply, Verdict, classify, rules_with
from mailpacer.core.errors import ConfigError, UsageError
from mailpacer.core.route import TlsMode

GOOD = """\
[defaults]
db = "/data/campaigns.db"
from = "HR <hr@example.com>"
route = "office"
uncertain = "hold"
check_dns = true

[defaults.retry]
max_attempts = 5
max_age = "2d"

[routes.office]
provider = "office365"
username = "hr@example.com"
password_env = "OFFICE_PW"
max_rate = "20/min"

[routes.relay]
url = "smtp+starttls://mailer@relay.example.com:2587"
password_env = "RELAY_PW"
max_connections = 4
daily_quota = 5000

[[rules]]
name = "acme-hourly"
verdict = "quota"
codes = [451]
text = "acme cap"
"""


def config(text: str = GOOD) -> ConfigFile:
    return parse_config(textwrap.dedent(text), "/etc/mailpacer.toml")


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "/etc/mailpacer.toml")
    return info.value


# --- reading the file -------------------------------------------------------------------------


def test_good_file_is_read_into_frozen_objects() -> None:
    """Every section of a valid file lands in typed, frozen fields."""
    file = config()
    assert file.defaults.db == "/data/campaigns.db"
    assert file.defaults.sender == "HR <hr@example.com>"
    assert file.defaults.retry.max_attempts == 5
    assert file.defaults.retry.max_age_seconds == 2 * 86400
    office = file.routes["office"]
    assert (office.provider, office.username, office.password_env) == (
        "office365", "hr@example.com", "OFFICE_PW",
    )  # fmt: skip
    assert office.max_rate == 20.0
    assert office.line == 12
    assert file.routes["relay"].username == "mailer"  # from the URL
    assert file.default_route() is office
    with pytest.raises(AttributeError):
        file.defaults.db = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("snippet", "key", "line"),
    [
        ("[defaults]\nfrom = 'a@b.c'\ncolour = 'red'\n", "defaults.colour", 3),
        ("[default]\ndb = 'x'\n", "default", 1),
        ("[routes.office]\nprovider = 'office365'\nmax_conections = 3\n",
         "routes.office.max_conections", 3),
        ("[routes.office]\nprovider = 'office365'\nmax_connections = 'three'\n",
         "routes.office.max_connections", 3),
        ("[routes.office]\nprovider = 'office365'\nmax_connections = true\n",
         "routes.office.max_connections", 3),
        ("[routes.office]\nprovider = 'office365'\nmax_connections = 0\n",
         "routes.office.max_connections", 3),
        ("[routes.office]\nprovider = 'office365'\n\nmax_rate = 'fast'\n",
         "routes.office.max_rate", 4),
        ("[routes.office]\nprovider = 'hotmale'\n", "routes.office.provider", 2),
        ("[routes.office]\nusername = 'x'\n", "routes.office", 1),
        ("[routes.r]\nurl = 'smtq://host'\n", "routes.r.url", 2),
        ("[routes.r]\nurl = 'smtp://h'\ntls_verify = 'no'\n", "routes.r.tls_verify", 3),
        ("[routes.r]\nurl = 'smtp://h'\npassword_env = 'MY-PW'\n", "routes.r.password_env", 3),
        ("[routes.ses]\nprovider = 'ses'\nusername = 'u'\n", "routes.ses", 1),
        ("[defaults]\nuncertain = 'maybe'\n", "defaults.uncertain", 2),
        ("[defaults]\nroute = 'nowhere'\n", "defaults.route", 2),
        ("[defaults]\nfrom = 'nobody'\n", "defaults.from", 2),
        ("[defaults]\ncheck_dns = 1\n", "defaults.check_dns", 2),
        ("[defaults.retry]\nmax_age = 'forever'\n", "defaults.retry.max_age", 2),
        ("[defaults.retry]\nbase_seconds = 20000\n", "defaults.retry.base_seconds", 2),
        ("[defaults.retry]\nmax_attempts = 2.5\n", "defaults.retry.max_attempts", 2),
        ("[defaults]\nretry = { max_attempts = 'x' }\n", "defaults.retry.max_attempts", 2),
        ("routes.a.url = 'smtp://h'\nroutes.a.timeout = -1\n", "routes.a.timeout", 2),
        ("[[rules]]\nname = 'a'\nverdict = 'quota'\n\n[[rules]]\nname = 'b'\nverdit = 'x'\n",
         "rules[2].verdit", 7),
        ("[[rules]]\nname = 'b'\nverdict = 'slow'\n", "rules[1].verdict", 3),
        ("[[rules]]\nname = 'c'\nverdict = 'quota'\ntext = '(unclosed'\n", "rules[1].text", 4),
        ("rules = 'none'\n", "rules", 1),
    ],
)  # fmt: skip
def test_every_error_names_file_key_and_line(snippet: str, key: str, line: int) -> None:
    """Unknown keys and wrong types name the file, the dotted key and its line."""
    exc = error(snippet)
    assert (exc.key, exc.line, exc.file) == (key, line, "/etc/mailpacer.toml")
    assert str(exc).startswith(f"/etc/mailpacer.toml:{line}: {key}: ")


def test_unknown_key_suggests_the_close_one() -> None:
    """A typo gets a 'did you mean' and the list of known keys."""
    message = str(error("[routes.o]\nprovider = 'office365'\nmax_conections = 3\n"))
    assert "did you mean 'max_connections'?" in message
    assert "known: url, provider" in message


def test_wrong_type_says_what_was_expected_and_what_was_found() -> None:
    """The message gives the expected kind and the value found."""
    message = str(error("[routes.o]\nprovider = 'office365'\nmax_connections = 'three'\n"))
    assert "expected a whole number, got text ('three')" in message


def test_toml_syntax_error_passes_tomllib_position_through() -> None:
    """Invalid TOML: tomllib's line and column are kept, and the line is on the error."""
    exc = error("[defaults]\ndb = 'x'\nfrom = \n")
    assert exc.line == 3
    assert str(exc).startswith("/etc/mailpacer.toml:3: invalid TOML: ")
    assert "line 3, column" in str(exc)


def test_literal_password_is_refused_with_the_way_to_reference_it() -> None:
    """password = '...' is refused (at its line) and the message shows password_env/_file."""
    exc = error(
        "[routes.office]\nprovider = 'office365'\nusername = 'a@b.c'\npassword = 'hunter2'\n"
    )
    assert (exc.key, exc.line) == ("routes.office.password", 4)
    assert "password_env" in str(exc) and "password_file" in str(exc)
    assert "hunter2" not in str(exc)


def test_password_in_url_is_refused() -> None:
    """A URL carrying a password is refused: credentials are by reference only."""
    exc = error("[routes.r]\nurl = 'smtps://u:hunter2@mail.example.com'\n")
    assert exc.key == "routes.r.url" and "password_env" in str(exc)


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    """db, password_file and cafile given relative resolve against the file's folder."""
    file = parse_config(
        "[defaults]\ndb = 'state/m.db'\n[routes.r]\nurl = 'smtp://h'\ncafile = 'ca.pem'\n",
        tmp_path / "mailpacer.toml",
    )
    assert file.defaults.db == str(tmp_path / "state" / "m.db")
    assert file.routes["r"].cafile == str(tmp_path / "ca.pem")


def test_rules_pass_through_to_the_classifier() -> None:
    """[[rules]] become classify.Rule objects that win over the built-in rules."""
    rules = config().rules
    assert [r.name for r in rules] == ["acme-hourly"]
    reply = Reply(451, "4.7.1 acme cap reached, come back later", Phase.MAIL)
    assert classify(reply, rules_with(rules)).verdict is Verdict.QUOTA
    assert classify(reply).verdict is not Verdict.QUOTA  # the defaults alone say otherwise


@pytest.mark.parametrize(
    ("text", "per_minute"),
    [("120/min", 120.0), ("2/s", 120.0), ("6000/h", 100.0), ("1440/day", 1.0), ("30/m", 30.0)],
)
def test_rates(text: str, per_minute: float) -> None:
    """Rates in any unit become messages per minute."""
    assert parse_rate(text) == pytest.approx(per_minute)


@pytest.mark.parametrize("text", ["fast", "0/min", "10/fortnight", "-1/s"])
def test_bad_rates(text: str) -> None:
    """Nonsense rates raise ValueError saying what is expected."""
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_a_rate_without_unit_is_refused() -> None:
    """Issue 14.9: "5" does not silently mean 5 a minute; the error offers the units."""
    with pytest.raises(ValueError, match=r"'5' has no unit; write 5/s, 5/min, 5/h or 5/day"):
        parse_rate("5")


def test_durations() -> None:
    """Durations accept s/m/h/d suffixes or plain seconds."""
    assert [parse_duration(v) for v in ("45s", "90m", "36h", "2d", 30)] == [
        45, 5400, 129600, 172800, 30,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="duration"):
        parse_duration("0s")


def test_key_lines_handle_dotted_inline_and_multiline() -> None:
    """The locator finds dotted keys, inline tables (at their key) and skips multi-line strings."""
    text = textwrap.dedent('''\
        [defaults]
        note = """
        fake = 1
        """
        retry = { max_attempts = 2 }
        [routes]
        a.url = "smtp://h"
        [[rules]]
        name = "x"
        [[rules]]
        "name" = "y"
    ''')
    lines = KeyLines(text)
    assert lines.line_of(("defaults", "fake")) == 1  # not line 3: that is inside a string
    assert lines.line_of(("defaults", "retry", "max_attempts")) == 5
    assert lines.line_of(("routes", "a", "url")) == 7
    assert lines.line_of(("rules", 1, "name")) == 11
    assert dotted(("rules", 1, "name")) == "rules[2].name"
    assert dotted(("routes", "my route", "url")) == 'routes."my route".url'


# --- finding the file -------------------------------------------------------------------------


def test_config_lookup_order(tmp_path: Path) -> None:
    """--config, then $MAILPACER_CONFIG, then ./mailpacer.toml, else none."""
    flag, envfile, local = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "mailpacer.toml"
    assert find_config(None, {}, tmp_path) is None
    for path in (flag, envfile, local):
        path.write_text("")
    env = {"MAILPACER_CONFIG": str(envfile)}
    assert find_config(str(flag), env, tmp_path) == flag
    assert find_config(None, env, tmp_path) == envfile
    assert find_config(None, {}, tmp_path) == local
    with pytest.raises(ConfigError, match="MAILPACER_CONFIG"):
        find_config(None, {"MAILPACER_CONFIG": str(tmp_path / "nope.toml")}, tmp_path)
    with pytest.raises(ConfigError, match="--config"):
        find_config(str(tmp_path / "nope.toml"), {}, tmp_path)


# --- precedence -------------------------------------------------------------------------------

ENV = {"OFFICE_PW": "office-secret", "RELAY_PW": "relay-secret", "HOME": "/home/u"}


def test_file_values_apply_when_nothing_overrides() -> None:
    """With no flags or env, the file's defaults and default route are used."""
    settings = resolve({}, ENV, config())
    assert settings.db == "/data/campaigns.db"
    assert settings.sender == "HR <hr@example.com>"
    assert settings.resend_uncertain is False and settings.check_dns is True
    assert settings.retry.max_attempts == 5
    route = settings.require_route()
    assert (route.host, route.port, route.tls) == ("smtp.office365.com", 587, TlsMode.STARTTLS)
    assert (route.username, route.password) == ("hr@example.com", "office-secret")
    assert settings.ceilings is not None
    assert (settings.ceilings.connections, settings.ceilings.rate_per_minute) == (3, 20.0)
    assert settings.origins["max_connections"] == "preset office365"
    assert settings.origins["max_rate"] == "file /etc/mailpacer.toml:16"
    assert "office-secret" not in repr(settings)


def test_env_beats_file_and_flags_beat_env() -> None:
    """For each setting: flag > environment variable > file."""
    env = {**ENV, "MAILPACER_DB": "/env.db", "MAILPACER_FROM": "env@example.com",
           "MAILPACER_MAX_CONNECTIONS": "2", "MAILPACER_MAX_RATE": "10/min"}  # fmt: skip
    settings = resolve({}, env, config())
    assert (settings.db, settings.sender) == ("/env.db", "env@example.com")
    assert settings.ceilings is not None
    assert (settings.ceilings.connections, settings.ceilings.rate_per_minute) == (2, 10.0)
    assert settings.ceilings.quota == 10_000  # the preset's, nobody overrode it
    flags = {"db": "/flag.db", "from": "flag@example.com", "max_connections": 1, "max_rate": "1/s"}
    settings = resolve(flags, env, config())
    assert (settings.db, settings.sender) == ("/flag.db", "flag@example.com")
    assert settings.ceilings is not None
    assert (settings.ceilings.connections, settings.ceilings.rate_per_minute) == (1, 60.0)
    assert settings.origins["db"] == "flag --db"
    assert settings.origins["max_connections"] == "flag --max-connections"


def test_defaults_when_nothing_is_configured() -> None:
    """No flags, env or file: the built-in defaults, and no route."""
    settings = resolve({}, {"XDG_DATA_HOME": "/xdg"}, None)
    assert settings.db == "/xdg/mailpacer/mailpacer.db"
    assert settings.route is None and settings.ceilings is None and settings.rules == ()
    assert settings.resend_uncertain is True and settings.check_dns is False
    with pytest.raises(UsageError, match="--smtp URL, --provider NAME or --route NAME"):
        settings.require_route()
    with pytest.raises(UsageError, match="--from"):
        settings.require_sender()


def test_route_choice_follows_precedence() -> None:
    """--route beats $MAILPACER_ROUTE beats defaults.route; --smtp replaces the file's route."""
    env = {**ENV, "MAILPACER_ROUTE": "relay"}
    assert resolve({}, env, config()).route_label == "route 'relay'"
    relay = resolve({}, env, config()).require_route()
    assert (relay.host, relay.port, relay.password) == ("relay.example.com", 2587, "relay-secret")
    assert resolve({"route": "office"}, env, config()).route_label == "route 'office' (office365)"
    settings = resolve({"smtp": "smtp://127.0.0.1:2525"}, env, config())
    assert settings.require_route().key == "smtp://127.0.0.1:2525"
    assert settings.ceilings is None  # the file route's ceilings do not follow another route


def test_provider_flag_with_username_and_password_env() -> None:
    """--provider NAME builds the preset route; the password is MAILPACER_SMTP_PASSWORD."""
    env = {"MAILPACER_SMTP_PASSWORD": "pw"}
    settings = resolve({"provider": "sendgrid"}, env, None)
    route = settings.require_route()
    assert (route.host, route.username, route.password) == ("smtp.sendgrid.net", "apikey", "pw")
    assert settings.ceilings is not None and settings.ceilings.messages_per_connection == 5000
    ses = resolve({"provider": "ses", "region": "eu-west-1", "username": "AKIA"}, env, None)
    assert ses.require_route().host == "email-smtp.eu-west-1.amazonaws.com"


def test_smtp_flag_with_provider_takes_the_preset_limits() -> None:
    """--smtp URL --provider NAME: the URL's host, the preset's published ceilings."""
    settings = resolve(
        {"smtp": "smtp+starttls://hr@10.0.0.5:587", "provider": "office365"},
        {"MAILPACER_SMTP_PASSWORD": "pw"},
        None,
    )
    assert settings.require_route().host == "10.0.0.5"
    assert settings.ceilings is not None and settings.ceilings.connections == 3


def test_tls_flags_apply_to_any_route() -> None:
    """--insecure-tls and --cafile override the route's TLS settings."""
    settings = resolve({"insecure_tls": True, "cafile": "/ca.pem"}, ENV, config())
    route = settings.require_route()
    assert (route.verify_tls, route.cafile) == (False, "/ca.pem")


# --- missing or bad credentials and values -------------------------------------------------


def test_missing_password_env_names_the_variable_and_line() -> None:
    """A route whose password_env is unset: the error names that variable and its line."""
    with pytest.raises(ConfigError) as info:
        resolve({}, {}, config())
    message = str(info.value)
    assert message.startswith("/etc/mailpacer.toml:15: route 'office' (office365) needs a password")
    assert "set OFFICE_PW" in message
    assert info.value.key == "OFFICE_PW"


def test_route_without_reference_falls_back_to_mailpacer_smtp_password() -> None:
    """No password_env: MAILPACER_SMTP_PASSWORD is used, and named when missing."""
    file = config("[routes.o]\nprovider = 'office365'\nusername = 'a@b.c'\n")
    route, _ = route_from_config(file.routes["o"], {"MAILPACER_SMTP_PASSWORD": "pw"}, file)
    assert route.password == "pw"
    with pytest.raises(ConfigError, match=r"set MAILPACER_SMTP_PASSWORD or password_env"):
        route_from_config(file.routes["o"], {}, file)


def test_route_password_env_wins_over_the_generic_variable() -> None:
    """A route's own password_env beats MAILPACER_SMTP_PASSWORD (it names that route's secret)."""
    settings = resolve({}, {**ENV, "MAILPACER_SMTP_PASSWORD": "generic"}, config())
    assert settings.require_route().password == "office-secret"


def test_password_file_is_read(tmp_path: Path) -> None:
    """password_file: the file's content (stripped) is the password; unreadable is an error."""
    (tmp_path / "pw").write_text("from-file\n")
    file = parse_config(
        "[routes.r]\nurl = 'smtps://u@h'\npassword_file = 'pw'\n"
        "[routes.s]\nurl = 'smtps://u@h'\npassword_file = 'missing'\n",
        tmp_path / "mailpacer.toml",
    )
    assert route_from_config(file.routes["r"], {}, file)[0].password == "from-file"
    with pytest.raises(ConfigError, match=r"mailpacer.toml:6: routes.s.password_file: cannot read"):
        route_from_config(file.routes["s"], {}, file)


def test_preset_with_missing_password_names_the_variable() -> None:
    """--provider office365 without a password says to set MAILPACER_SMTP_PASSWORD."""
    with pytest.raises(ConfigError, match=r"set MAILPACER_SMTP_PASSWORD") as info:
        resolve({"provider": "office365", "username": "hr@example.com"}, {}, None)
    assert str(info.value).startswith("provider office365 needs a password: set ")


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"MAILPACER_MAX_CONNECTIONS": "lots"}, "MAILPACER_MAX_CONNECTIONS"),
        ({"MAILPACER_MAX_CONNECTIONS": "0"}, "MAILPACER_MAX_CONNECTIONS"),
        ({"MAILPACER_MAX_RATE": "quick"}, "MAILPACER_MAX_RATE"),
        ({"MAILPACER_DAILY_QUOTA": "-5"}, "MAILPACER_DAILY_QUOTA"),
        ({"MAILPACER_UNCERTAIN": "perhaps"}, "MAILPACER_UNCERTAIN"),
        ({"MAILPACER_CHECK_DNS": "sometimes"}, "MAILPACER_CHECK_DNS"),
        ({"MAILPACER_ROUTE": "nowhere"}, "MAILPACER_ROUTE"),
        ({"MAILPACER_PROVIDER": "hotmale"}, "provider"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], name: str) -> None:
    """A wrong MAILPACER_* value raises ConfigError naming the variable."""
    with pytest.raises(ConfigError) as info:
        resolve({}, {**ENV, **env}, config())
    assert info.value.key == name
    assert name in str(info.value) or "unknown provider" in str(info.value)


def test_route_and_smtp_together_are_refused() -> None:
    """--route and --smtp both name a route: refused before anything starts."""
    with pytest.raises(UsageError, match="--route and --smtp"):
        resolve({"route": "office", "smtp": "smtp://h"}, ENV, config())


def test_unknown_flag_key_is_a_programming_error() -> None:
    """resolve() refuses flag keys it does not know (a typo in the caller)."""
    with pytest.raises(TypeError, match="max_conections"):
        resolve({"max_conections": 3}, {}, None)


_NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


@given(
    tables=st.dictionaries(
        _NAMES, st.dictionaries(_NAMES, st.integers(), min_size=1, max_size=4), max_size=4
    ),
    blanks=st.integers(min_value=0, max_value=2),
)
def test_key_lines_point_at_the_key_in_any_file(
    tables: dict[str, dict[str, int]], blanks: int
) -> None:
    """For any generated file, every key's line is the line that assigns it."""
    out: list[str] = []
    for table, keys in tables.items():
        out += ["# a comment", f"[routes.{table}]"]
        for key, value in keys.items():
            out += [""] * blanks + [f"{key} = {value}  # {key} = 0"]
    text = "\n".join(out) + "\n"
    assert tomllib.loads(text) == ({"routes": tables} if tables else {})
    lines = KeyLines(text).lines
    source = text.splitlines()
    for table, keys in tables.items():
        assert source[lines[("routes", table)] - 1] == f"[routes.{table}]"
        for key in keys:
            assert source[lines[("routes", table, key)] - 1].startswith(f"{key} = ")
