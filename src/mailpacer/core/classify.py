"""What an SMTP reply (or its absence) means for a message and for the route (DESIGN §4).

Classification is one pure function over a table of rules: the first rule whose conditions all
hold names the verdict. The defaults know the big providers' wording (DESIGN §9); users put their
own rules in front of them (:func:`rules_with`). :func:`classify` returns a verdict for any input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from mailpacer.core.errors import ConfigError

__all__ = [
    "DEFAULT_RULES",
    "Classification",
    "Phase",
    "Reply",
    "Rule",
    "Verdict",
    "classify",
    "parse_enhanced",
    "parse_limits_keyword",
    "parse_retry_after",
    "rules_with",
]


class Verdict(StrEnum):
    """What a reply means; the engine and the pacer act on it (DESIGN §4)."""

    #: 2xx (or 3xx mid-transaction): the step, or the whole message, succeeded
    ACCEPTED = "accepted"
    #: too many connections: requeue without an attempt, shrink concurrency
    THROTTLE_CONNECTIONS = "throttle-connections"
    #: sending too fast: requeue without an attempt, shrink the rate
    THROTTLE_RATE = "throttle-rate"
    #: this connection carried its share: requeue, reconnect earlier next time
    THROTTLE_PER_CONNECTION = "throttle-per-connection"
    #: the route's quota for the window is used up: requeue, wait for the window
    QUOTA = "quota"
    #: greylisted: defer by the hinted delay
    GREYLIST = "greylist"
    #: a temporary failure: defer with backoff, count the attempt
    TRANSIENT = "transient"
    #: this recipient is refused for good
    RECIPIENT_REJECTED = "recipient-rejected"
    #: this message is refused for good
    MESSAGE_REJECTED = "message-rejected"
    #: authentication, TLS or sender refused: the route stops, the campaign pauses
    ROUTE_FAILURE = "route-failure"
    #: no reply after the final ".": the message may or may not have been delivered
    AMBIGUOUS = "ambiguous"


class Phase(StrEnum):
    """The SMTP step a reply answers."""

    CONNECT = "connect"  #: TCP connect and the greeting
    EHLO = "ehlo"
    STARTTLS = "starttls"  #: the command and the TLS handshake
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  #: the DATA command (354 expected)
    DATA_END = "data-end"  #: the reply after the final "."
    RSET = "rset"
    QUIT = "quit"


@dataclass(frozen=True)
class Reply:
    """One server reply, or its absence (``code=None``: timeout, reset, disconnect, refused)."""

    code: int | None
    text: str
    phase: Phase
    messages_on_connection: int = 0  #: messages accepted earlier on this connection


@dataclass(frozen=True)
class Classification:
    """The verdict, the RFC 3463 code and retry hint read from the text, and the rule's name."""

    verdict: Verdict
    enhanced: str | None
    retry_after: float | None
    rule: str


_FLAGS = re.IGNORECASE | re.DOTALL
_RULE_KEYS = frozenset(
    {"name", "verdict", "codes", "enhanced", "text", "phases", "min_messages", "reply"}
)


@dataclass(frozen=True)
class Rule:
    """Conditions on a reply that all must hold; unset conditions match anything.

    ``codes`` are exact reply codes, ``classes`` first digits (4 for 4xx); ``enhanced`` are RFC 3463
    prefixes by segment ("5.1" matches 5.1.1, "x.2.2" any class); ``text`` is a case-insensitive
    regex searched in the reply text; ``no_reply`` True matches only absent replies, False only
    present ones.
    """

    name: str
    verdict: Verdict
    codes: frozenset[int] = frozenset()
    classes: frozenset[int] = frozenset()
    enhanced: tuple[str, ...] = ()
    text: str | None = None
    phases: frozenset[Phase] = frozenset()
    min_messages: int = 0
    no_reply: bool | None = None
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.text is not None:
            try:
                object.__setattr__(self, "_regex", re.compile(self.text, _FLAGS))
            except re.error as exc:
                raise ConfigError(f"rule {self.name!r}: bad text regex: {exc}", key="text") from exc

    def matches(self, reply: Reply, enhanced: str | None) -> bool:
        """True when every condition of this rule holds for ``reply``."""
        code = reply.code
        if self.no_reply is not None and self.no_reply != (code is None):
            return False
        if (self.codes or self.classes) and (
            code is None or (code not in self.codes and code // 100 not in self.classes)
        ):
            return False
        if self.phases and reply.phase not in self.phases:
            return False
        if reply.messages_on_connection < self.min_messages:
            return False
        if self.enhanced and not (
            enhanced is not None and any(_enhanced_match(p, enhanced) for p in self.enhanced)
        ):
            return False
        return self._regex is None or self._regex.search(reply.text) is not None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Rule:
        """Build a user rule from config, e.g. ``{"name": "acme-rate", "verdict": "throttle-rate",
        "codes": [451, "5xx"], "text": "slow down", "phases": ["mail"]}``.

        Raises :class:`~mailpacer.core.errors.ConfigError` naming the bad key.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a rule must be a mapping, not {type(data).__name__}")
        unknown = sorted(set(data) - _RULE_KEYS)
        if unknown:
            allowed = ", ".join(sorted(_RULE_KEYS))
            raise ConfigError(
                f"unknown rule key {unknown[0]!r} (allowed: {allowed})", key=unknown[0]
            )
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("a rule needs a non-empty 'name'", key="name")
        verdict = _choice(Verdict, data.get("verdict"), name, "verdict")
        codes, classes = _parse_codes(data.get("codes", []), name)
        enhanced = tuple(_parse_enhanced_prefix(p, name) for p in _as_list(data, "enhanced", name))
        phases = frozenset(
            _choice(Phase, p, name, "phases") for p in _as_list(data, "phases", name)
        )
        text = data.get("text")
        if text is not None and not isinstance(text, str):
            raise ConfigError(f"rule {name!r}: 'text' must be a regex string", key="text")
        min_messages = data.get("min_messages", 0)
        if isinstance(min_messages, bool) or not isinstance(min_messages, int) or min_messages < 0:
            raise ConfigError(
                f"rule {name!r}: 'min_messages' must be an integer ≥ 0", key="min_messages"
            )
        reply = data.get("reply", "any")
        if reply not in ("any", "none", "some"):
            raise ConfigError(f"rule {name!r}: 'reply' must be any, none or some", key="reply")
        no_reply = {"any": None, "none": True, "some": False}[reply]
        return cls(name, verdict, codes, classes, enhanced, text, phases, min_messages, no_reply)


def _as_list(data: Mapping[str, Any], key: str, name: str) -> list[Any]:
    value = data.get(key, [])
    if isinstance(value, str | int):
        return [value]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"rule {name!r}: {key!r} must be a list", key=key)
    return list(value)


_E = TypeVar("_E", bound=StrEnum)


def _choice(enum: type[_E], value: Any, name: str, key: str) -> _E:
    try:
        return enum(str(value).lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ConfigError(
            f"rule {name!r}: bad {key} {value!r} (one of: {allowed})", key=key
        ) from None


def _parse_codes(value: Any, name: str) -> tuple[frozenset[int], frozenset[int]]:
    codes: set[int] = set()
    classes: set[int] = set()
    for item in _as_list({"codes": value}, "codes", name):
        text = str(item).strip().lower()
        if re.fullmatch(r"[2-5]\d\d", text) and not isinstance(item, bool):
            codes.add(int(text))
        elif re.fullmatch(r"[2-5]xx", text):
            classes.add(int(text[0]))
        else:
            raise ConfigError(f"rule {name!r}: bad code {item!r} (e.g. 421 or '4xx')", key="codes")
    return frozenset(codes), frozenset(classes)


def _parse_enhanced_prefix(value: Any, name: str) -> str:
    text = str(value).strip().lower()
    if not re.fullmatch(r"(?:[245x])(?:\.(?:\d{1,3}|x)){0,2}\.?", text):
        raise ConfigError(
            f"rule {name!r}: bad enhanced code {value!r} (e.g. 5.1 or 4.7.1)", key="enhanced"
        )
    return text.rstrip(".")


def _enhanced_match(prefix: str, enhanced: str) -> bool:
    parts = enhanced.split(".")
    return all(p in ("x", parts[i]) for i, p in enumerate(prefix.split(".")))


_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RETRY_AFTER = re.compile(
    r"\b(?:try(?:\s+again)?|retry|resend|come\s+back|wait(?:ing)?|greylisted|graylisted|deferred)"
    r"\b[^.;\d]{0,30}?(\d{1,6}(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b",
    _FLAGS,
)


def parse_enhanced(code: int | None, text: str) -> str | None:
    """The RFC 3463 code in ``text`` ("4.7.1"), preferring one of the reply code's class."""
    found = [".".join(m.groups()) for m in _ENHANCED.finditer(text)]
    if code is not None:
        for item in found:
            if item[0] == str(code)[0]:
                return item
    return found[0] if found else None


def parse_retry_after(text: str) -> float | None:
    """Seconds the server asks us to wait ("try again in 5 minutes", "greylisted for 300 s")."""
    match = _RETRY_AFTER.search(text)
    if match is None:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)[0].lower()]


def classify(reply: Reply, rules: Sequence[Rule] | None = None) -> Classification:
    """The verdict of the first rule that matches ``reply``; never raises, always a verdict."""
    table = DEFAULT_RULES if rules is None else rules
    enhanced = parse_enhanced(reply.code, reply.text)
    retry_after = parse_retry_after(reply.text)
    for rule in table:
        if rule.matches(reply, enhanced):
            return Classification(rule.verdict, enhanced, retry_after, rule.name)
    verdict = Verdict.AMBIGUOUS if reply.phase is Phase.DATA_END else Verdict.TRANSIENT
    return Classification(verdict, enhanced, retry_after, "unmatched")


def rules_with(user_rules: Iterable[Rule | Mapping[str, Any]]) -> tuple[Rule, ...]:
    """User rules (objects or config mappings) in front of :data:`DEFAULT_RULES`."""
    own = tuple(r if isinstance(r, Rule) else Rule.from_mapping(r) for r in user_rules)
    return own + DEFAULT_RULES


def parse_limits_keyword(ehlo_text: str) -> dict[str, int]:
    """The RFC 9422 ``LIMITS`` EHLO keyword's known values, e.g. ``{"MAILMAX": 100}``.

    ``ehlo_text`` is the EHLO reply (with or without "250-" prefixes); unknown or malformed
    parameters are ignored, as the RFC asks.
    """
    limits: dict[str, int] = {}
    for line in ehlo_text.splitlines():
        words = re.sub(r"^\s*250[ -]", "", line).split()
        if not words or words[0].upper() != "LIMITS":
            continue
        for word in words[1:]:
            key, sep, value = word.partition("=")
            key = key.upper()
            if sep and key in _LIMIT_KEYS and re.fullmatch(r"\d{1,9}", value) and int(value) > 0:
                limits[key] = int(value)
    return limits


_LIMIT_KEYS = frozenset({"MAILMAX", "RCPTMAX", "RCPTDOMAINMAX"})

V = Verdict
P = Phase
_4XX = frozenset({4})
_5XX = frozenset({5})
_45XX = frozenset({4, 5})
_CONN_WORDS = (
    r"too many (?:concurrent |simultaneous |smtp )*connections|concurrent (?:\w+ )?connection"
    r"|sender thread limit|connection (?:count )?limit|\bHL:ICC\b|connections? per (?:ip|host)"
)
_RATE_WORDS = (
    r"\brate\b|rate[- ]limit|too many (?:messages|mails|emails)|too much mail|too (?:fast|quickly)"
    r"|slow down|frequen|throttl|\bHL:IFC\b|\bMI:SFQ\b"
    r"|too many (?:requests|deliveries|sends|submissions)|per (?:minute|second)\b"
    r"|(?:sending|send|message|mail|submission|relay|outgoing)\w* limit (?:has been |was )?"
    r"(?:reached|exceeded)|exceeded (?:the |your |our )?(?:sending|submission|relay|rate)\w* limit"
)
_LATER_WORDS = (
    r"try (?:again )?later|retry later|come back later|temporarily deferred"
    r"|try again (?:in|after)\b|retry (?:in|after)\b|please wait\b"
)

DEFAULT_RULES: tuple[Rule, ...] = (
    # --- no reply: a TLS failure stops the route; before the final "." nothing was delivered
    Rule(
        "tls-handshake-failed",
        V.ROUTE_FAILURE,
        phases=frozenset({P.CONNECT, P.STARTTLS}),
        no_reply=True,
        text=r"certificate|ssl|tls|handshake",
    ),
    Rule("no-reply-after-data", V.AMBIGUOUS, phases=frozenset({P.DATA_END}), no_reply=True),
    Rule("no-reply", V.TRANSIENT, no_reply=True),
    Rule("accepted", V.ACCEPTED, classes=frozenset({2, 3})),
    # --- a full mailbox belongs to one recipient, not to the route's quota; Microsoft 365 says
    # "mailbox full" of the sender's own mailbox (STOREDRV.Submission): the route cannot go on
    Rule(
        "sender-mailbox-full", V.ROUTE_FAILURE, classes=_5XX, enhanced=("x.2.2",), text=r"STOREDRV"
    ),
    Rule("mailbox-full-permanent", V.RECIPIENT_REJECTED, classes=_5XX, enhanced=("x.2.2",)),
    Rule(
        "mailbox-full-permanent-words",
        V.RECIPIENT_REJECTED,
        classes=_5XX,
        text=r"mailbox (?:is )?full|over ?quota|exceeded storage|insufficient storage",
    ),
    Rule("mailbox-full", V.TRANSIENT, classes=_4XX, enhanced=("x.2.2",)),
    Rule(
        "mailbox-full-words",
        V.TRANSIENT,
        classes=_4XX,
        text=r"mailbox (?:is )?full|over ?quota|exceeded storage|insufficient (?:system )?storage",
    ),
    # --- quotas: often 5xx, yet they clear when the window resets
    Rule("quota-5.4.5", V.QUOTA, classes=_45XX, enhanced=("5.4.5",)),
    Rule(
        "quota-words",
        V.QUOTA,
        classes=_45XX,
        text=r"quota|daily\b.{0,40}\blimit|\bper day\b|credits? exceeded|sending limit exceeded"
        r"|\bMI:STC\b|limit (?:exceeded )?for (?:the|to)day|hourly|per hour\b|this hour\b",
    ),
    # --- per connection: a cap on messages in one session; only after some were accepted
    Rule(
        "per-connection",
        V.THROTTLE_PER_CONNECTION,
        classes=_4XX,
        min_messages=1,
        text=r"too many (?:messages|mails) in (?:this|one|the) (?:connection|session)"
        r"|message count per (?:session|connection)|messages per (?:session|connection)"
        r"|\bMI:DMC\b",
    ),
    # --- concurrent connections
    Rule("too-many-connections", V.THROTTLE_CONNECTIONS, classes=_45XX, text=_CONN_WORDS),
    Rule("connections-4.3.2", V.THROTTLE_CONNECTIONS, classes=_4XX, enhanced=("4.3.2",)),
    Rule("greylist", V.GREYLIST, classes=_4XX, text=r"gr[ea]y[- ]?list"),
    # --- authentication and TLS: the route cannot be used as configured
    Rule("auth-codes", V.ROUTE_FAILURE, codes=frozenset({530, 534, 535, 538})),
    Rule(
        "tls-required",
        V.ROUTE_FAILURE,
        classes=_45XX,
        text=r"tls required|must issue a starttls|starttls (?:is )?required|encryption required",
    ),
    # --- rate: strong wording, even on 5xx ("550 Ip frequency limited")
    Rule("rate-words", V.THROTTLE_RATE, classes=_45XX, text=_RATE_WORDS),
    Rule("auth-phase", V.ROUTE_FAILURE, classes=_45XX, phases=frozenset({P.AUTH})),
    Rule("starttls-phase", V.ROUTE_FAILURE, classes=_45XX, phases=frozenset({P.STARTTLS})),
    Rule("tls-454", V.ROUTE_FAILURE, codes=frozenset({454}), text=r"\btls\b|ssl|certificate"),
    # --- temporary trouble that slowing down does not cure
    Rule(
        "server-trouble",
        V.TRANSIENT,
        classes=_4XX,
        text=r"temporar\w* (?:system|local|server) (?:problem|error|failure)|server busy"
        r"|system busy|queue unavailable|out of memory|too many errors|error in processing"
        r"|local error|timeout|timed out",
    ),
    Rule(
        "policy-deferral",
        V.TRANSIENT,
        classes=_4XX,
        text=r"reject|denied|not permitted|blocked|black ?list|block ?list|\brbl\b|spam|policy"
        r"|whitelist|allowlist|reputation|\bDT:|\bWM:BL",
    ),
    # --- any other 421 as the greeting: the server has no slot for us now (Gmail's "421 4.7.0
    # Try again later, closing connection." too: the fix is one connection fewer, not a slower pace)
    Rule(
        "greeting-421",
        V.THROTTLE_CONNECTIONS,
        codes=frozenset({421}),
        phases=frozenset({P.CONNECT, P.EHLO}),
    ),
    # --- "try again later" on a 4xx in a session is a request to slow down
    Rule("rate-try-later", V.THROTTLE_RATE, classes=_4XX, text=_LATER_WORDS),
    # --- weak rate signs: 4.7.x / 4.2.1 on a 4xx
    Rule("rate-enhanced", V.THROTTLE_RATE, classes=_4XX, enhanced=("4.7", "4.2.1")),
    Rule("other-4xx", V.TRANSIENT, classes=_4XX),
    # --- permanent refusals
    Rule("recipient-5.1", V.RECIPIENT_REJECTED, classes=_5XX, enhanced=("5.1",)),
    # --- a 5xx that asks to come back later, before a recipient is named, is a limit in other
    # words (at RCPT or after DATA "try again later" may still be about the message)
    Rule(
        "rate-try-later-5xx",
        V.THROTTLE_RATE,
        classes=_5XX,
        phases=frozenset({P.CONNECT, P.EHLO, P.MAIL}),  # before any recipient or content
        text=_LATER_WORDS,
    ),
    Rule("recipient-rcpt", V.RECIPIENT_REJECTED, classes=_5XX, phases=frozenset({P.RCPT})),
    Rule(
        "sender-or-server-refused",
        V.ROUTE_FAILURE,
        classes=_5XX,
        phases=frozenset({P.CONNECT, P.EHLO, P.MAIL}),
    ),
    Rule("message-data", V.MESSAGE_REJECTED, classes=_5XX, phases=frozenset({P.DATA, P.DATA_END})),
    Rule("message-content", V.MESSAGE_REJECTED, classes=_5XX, enhanced=("5.6", "5.7")),
    Rule("other-5xx", V.TRANSIENT, classes=_5XX),
    Rule("odd-after-data", V.AMBIGUOUS, phases=frozenset({P.DATA_END})),
    Rule("odd-reply", V.TRANSIENT),
)
"""The built-in rules, most specific first; see DESIGN §4 and §9 for the wording they know."""
