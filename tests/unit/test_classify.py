"""Reply classification: real replies from big providers, user rules, and any input at all."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpacer.core.classify import (
    DEFAULT_RULES,
    Classification,
    Phase,
    Reply,
    Rule,
    Verdict,
    classify,
    parse_enhanced,
    parse_limits_keyword,
    parse_retry_after,
    rules_with,
)
from mailpacer.core.errors import ConfigError

V = Verdict
P = Phase

# (source, code, text, phase, messages accepted earlier on the connection, expected verdict)
REAL_REPLIES: list[tuple[str, int | None, str, Phase, int, Verdict]] = [
    # --- Gmail / Google Workspace (support.google.com/a/answer/3726730)
    (
        "gmail",
        421,
        "4.7.0 Try again later, closing connection. - gsmtp",
        P.MAIL,
        12,
        V.THROTTLE_RATE,
    ),
    (
        "gmail",
        421,
        "4.7.0 Try again later, closing connection. (EHLO) - gsmtp",
        P.CONNECT,
        0,
        V.THROTTLE_CONNECTIONS,
    ),
    (
        "gmail",
        450,
        "4.2.1 The user you are trying to contact is receiving mail too quickly. "
        "Please resend your message at a later time.",
        P.RCPT,
        3,
        V.THROTTLE_RATE,
    ),
    (
        "gmail",
        450,
        "4.2.1 The user you are trying to contact is receiving mail at a rate that\n"
        "4.2.1 prevents additional messages from being delivered.",
        P.RCPT,
        0,
        V.THROTTLE_RATE,
    ),
    (
        "gmail",
        421,
        "4.7.28 [203.0.113.5] Our system has detected an unusual rate of unsolicited "
        "mail originating from your IP address. To protect our users from spam, mail sent "
        "from your IP address has been temporarily rate limited.",
        P.DATA_END,
        5,
        V.THROTTLE_RATE,
    ),
    (
        "gmail",
        450,
        "4.2.1 Peak SMTP relay limit exceeded for customer. This is a temporary error.",
        P.MAIL,
        10,
        V.THROTTLE_RATE,
    ),
    (
        "gmail",
        550,
        "5.4.5 Daily user sending limit exceeded. For more information on Gmail's "
        "sending limits, go to https://support.google.com/a/answer/166852 - gsmtp",
        P.MAIL,
        40,
        V.QUOTA,
    ),
    ("gmail", 421, "4.3.0 Temporary System Problem. Try again later", P.DATA_END, 2, V.TRANSIENT),
    ("gmail", 451, "4.4.2 Timeout - closing connection.", P.DATA, 1, V.TRANSIENT),
    (
        "gmail",
        452,
        "4.2.2 The email account that you tried to reach is over quota.",
        P.RCPT,
        0,
        V.TRANSIENT,
    ),
    (
        "gmail",
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos.",
        P.RCPT,
        0,
        V.RECIPIENT_REJECTED,
    ),
    (
        "gmail",
        552,
        "5.7.0 This message was blocked because its content presents a potential security issue.",
        P.DATA_END,
        0,
        V.MESSAGE_REJECTED,
    ),
    (
        "gmail",
        550,
        "5.7.1 This message violates example.com email policy. - gcdp <id> - gsmtp",
        P.DATA_END,
        0,
        V.MESSAGE_REJECTED,
    ),
    ("gmail", 535, "5.7.8 Username and Password not accepted.", P.AUTH, 0, V.ROUTE_FAILURE),
    (
        "gmail",
        421,
        "4.7.0 TLS required for RCPT domain, closing connection.",
        P.RCPT,
        0,
        V.ROUTE_FAILURE,
    ),
    # --- Microsoft 365 / Exchange Online (learn.microsoft.com smtp-submission-improvements)
    (
        "m365",
        432,
        "4.3.2 Concurrent connections limit exceeded.",
        P.MAIL,
        0,
        V.THROTTLE_CONNECTIONS,
    ),
    (
        "m365",
        432,
        "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
        P.DATA_END,
        0,
        V.THROTTLE_CONNECTIONS,
    ),
    (
        "m365",
        554,
        "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed "
        "to process message due to a permanent exception",
        P.DATA_END,
        12,
        V.QUOTA,
    ),
    (
        "m365",
        554,
        "5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException."
        "MapiExceptionShutoffQuotaExceeded",
        P.DATA_END,
        0,
        V.ROUTE_FAILURE,
    ),
    (
        "m365",
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
        P.AUTH,
        0,
        V.ROUTE_FAILURE,
    ),
    ("m365", 530, "5.7.57 Client not authenticated to send mail.", P.MAIL, 0, V.ROUTE_FAILURE),
    # --- Tencent Exmail / QQ Mail (service.exmail.qq.com help 20022)
    (
        "qq",
        550,
        "Ip frequency limited. http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=20022"
        "&&no=1000725",
        P.MAIL,
        8,
        V.THROTTLE_RATE,
    ),
    ("qq", 550, "Sender frequency limited.", P.RCPT, 4, V.THROTTLE_RATE),
    ("qq", 550, "Connection frequency limited.", P.CONNECT, 0, V.THROTTLE_RATE),
    (
        "qq",
        550,
        "Mailbox not found. http://service.exmail.qq.com/cgi-bin/help?subtype=1&&id=20022"
        "&&no=1000728",
        P.RCPT,
        0,
        V.RECIPIENT_REJECTED,
    ),
    (
        "qq",
        550,
        "Mail content denied. http://service.exmail.qq.com/cgi-bin/help?subtype=1&&id=20022"
        "&&no=1000726",
        P.DATA_END,
        0,
        V.MESSAGE_REJECTED,
    ),
    (
        "qq",
        535,
        "Login Fail. Please enter your authorization code to login.",
        P.AUTH,
        0,
        V.ROUTE_FAILURE,
    ),
    # --- NetEase 163/126 (the published bounce-code table)
    ("netease", 421, "HL:ICC 该IP同时并发连接数过大", P.CONNECT, 0, V.THROTTLE_CONNECTIONS),
    ("netease", 421, "HL:IFC 该IP短期内发送了大量信件", P.MAIL, 30, V.THROTTLE_RATE),
    (
        "netease",
        451,
        "MI:DMC 当前连接发送的邮件数量超出限制",
        P.MAIL,
        50,
        V.THROTTLE_PER_CONNECTION,
    ),
    ("netease", 451, "MI:SFQ 发信人在15分钟内的发信数量超过限制", P.MAIL, 2, V.THROTTLE_RATE),
    ("netease", 550, "MI:STC 发件人当天内累计邮件数量超过限制", P.MAIL, 7, V.QUOTA),
    ("netease", 451, "DT:SPM ,please try again", P.DATA_END, 0, V.TRANSIENT),
    (
        "netease",
        554,
        "DT:SPM 163 smtp14,EsCowACnl4c1 1612345678",
        P.DATA_END,
        0,
        V.MESSAGE_REJECTED,
    ),
    ("netease", 535, "Error: authentication failed", P.AUTH, 0, V.ROUTE_FAILURE),
    (
        "netease",
        451,
        "Requested mail action not taken: too much fail authentication",
        P.AUTH,
        0,
        V.ROUTE_FAILURE,
    ),
    ("netease", 550, "User has no permission", P.MAIL, 0, V.ROUTE_FAILURE),
    # --- Aliyun mail (the SMTP error-code table)
    ("aliyun", 526, "Authentication failure[0]", P.AUTH, 0, V.ROUTE_FAILURE),
    ("aliyun", 554, "RCPT (nobody@example.com) dosn't exist", P.RCPT, 0, V.RECIPIENT_REJECTED),
    ("aliyun", 552, "mailbox is full", P.RCPT, 0, V.RECIPIENT_REJECTED),
    ("aliyun", 454, "Transient reject by behaviour spam", P.DATA_END, 0, V.TRANSIENT),
    (
        "aliyun",
        554,
        "Reject by behaviour spamANTISPAM_BAT[01201311R196, c01a1]: too frequently sending",
        P.DATA_END,
        20,
        V.THROTTLE_RATE,
    ),
    ("aliyun", 554, "Reject by content spam", P.DATA_END, 0, V.MESSAGE_REJECTED),
    # --- Amazon SES (docs: manage-sending-quotas-errors)
    ("ses", 454, "Throttling failure: Maximum sending rate exceeded.", P.MAIL, 14, V.THROTTLE_RATE),
    ("ses", 454, "Throttling failure: Daily message quota exceeded.", P.MAIL, 14, V.QUOTA),
    (
        "ses",
        421,
        "Maximum message count per session reached",
        P.MAIL,
        50,
        V.THROTTLE_PER_CONNECTION,
    ),
    (
        "ses",
        554,
        "Message rejected: Email address is not verified. The following identities "
        "failed the check in region EU-WEST-1",
        P.DATA_END,
        0,
        V.MESSAGE_REJECTED,
    ),
    # --- SendGrid (twilio.com docs: SMTP errors and troubleshooting)
    (
        "sendgrid",
        421,
        "Message from (203.0.113.5) temporarily deferred",
        P.MAIL,
        3,
        V.THROTTLE_RATE,
    ),
    (
        "sendgrid",
        450,
        "too frequent connects from 198.37.147.135, please try again later.",
        P.CONNECT,
        0,
        V.THROTTLE_RATE,
    ),
    ("sendgrid", 451, "Temporary local problem - please try later", P.DATA_END, 0, V.TRANSIENT),
    ("sendgrid", 451, "Authentication failed: Maximum credits exceeded", P.MAIL, 100, V.QUOTA),
    (
        "exchange",
        421,
        "4.3.2 The maximum number of concurrent server connections has exceeded a limit, "
        "closing transmission channel",
        P.CONNECT,
        0,
        V.THROTTLE_CONNECTIONS,
    ),
    # --- Postfix (anvil, postscreen, smtpd; postgrey)
    (
        "postfix",
        421,
        "4.7.0 mx.example.com Error: too many connections from 203.0.113.5",
        P.CONNECT,
        0,
        V.THROTTLE_CONNECTIONS,
    ),
    ("postfix", 450, "4.7.1 Error: too much mail from 203.0.113.5", P.MAIL, 9, V.THROTTLE_RATE),
    ("postfix", 421, "4.7.0 mx.example.com Error: too many errors", P.RCPT, 1, V.TRANSIENT),
    (
        "postfix",
        451,
        "4.7.1 <a@example.com>: Recipient address rejected: Greylisted, try again in 300 seconds",
        P.RCPT,
        0,
        V.GREYLIST,
    ),
    (
        "postgrey",
        450,
        "4.2.0 <a@example.com>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.com.html",
        P.RCPT,
        0,
        V.GREYLIST,
    ),
    (
        "postfix",
        550,
        "5.1.1 <a@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
        P.RCPT,
        0,
        V.RECIPIENT_REJECTED,
    ),
    (
        "postfix",
        454,
        "4.7.0 TLS not available due to local problem",
        P.STARTTLS,
        0,
        V.ROUTE_FAILURE,
    ),
    ("postfix", 452, "4.3.1 Insufficient system storage", P.MAIL, 0, V.TRANSIENT),
    # --- Exim (smtp_accept_max_per_host, smtp_accept_max_per_connection, ratelimit ACL)
    (
        "exim",
        421,
        "Too many concurrent SMTP connections from this IP address; please try again later.",
        P.CONNECT,
        0,
        V.THROTTLE_CONNECTIONS,
    ),
    ("exim", 421, "too many messages in this connection", P.MAIL, 100, V.THROTTLE_PER_CONNECTION),
    (
        "exim",
        451,
        "Number of sent emails has exceeded our IP limit. Come back later.",
        P.RCPT,
        4,
        V.THROTTLE_RATE,
    ),
    (
        "sendmail",
        421,
        "4.3.2 Connection rate limit exceeded.",
        P.CONNECT,
        0,
        V.THROTTLE_CONNECTIONS,
    ),
    # --- no reply at all
    ("timeout", None, "timed out waiting for the greeting", P.CONNECT, 0, V.TRANSIENT),
    ("reset", None, "connection reset by peer", P.RCPT, 2, V.TRANSIENT),
    ("dropped", None, "server disconnected", P.DATA_END, 2, V.AMBIGUOUS),
    (
        "tls",
        None,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
        P.STARTTLS,
        0,
        V.ROUTE_FAILURE,
    ),
    # --- the happy path
    ("postfix", 250, "2.0.0 Ok: queued as 4Fz1xY2", P.DATA_END, 0, V.ACCEPTED),
    ("postfix", 354, "End data with <CR><LF>.<CR><LF>", P.DATA, 0, V.ACCEPTED),
]


@pytest.mark.parametrize(
    ("source", "code", "text", "phase", "messages", "expected"),
    REAL_REPLIES,
    ids=[f"{r[0]}-{r[1]}-{i}" for i, r in enumerate(REAL_REPLIES)],
)
def test_real_replies(
    source: str, code: int | None, text: str, phase: Phase, messages: int, expected: Verdict
) -> None:
    """Each published reply from a real provider gets the verdict a careful operator would give."""
    result = classify(Reply(code, text, phase, messages))
    assert result.verdict is expected, f"{source}: {code} {text!r} matched rule {result.rule}"


def test_table_is_big_and_varied() -> None:
    """The table covers at least 30 real replies from every provider the issue names."""
    sources = {r[0] for r in REAL_REPLIES}
    assert len(REAL_REPLIES) >= 30
    assert {
        "gmail",
        "m365",
        "qq",
        "netease",
        "aliyun",
        "ses",
        "sendgrid",
        "postfix",
        "exim",
    } <= sources


def test_greylist_and_too_much_mail_differ_on_the_same_code() -> None:
    """451 4.7.1 is a greylist with greylist wording and a rate throttle with rate wording."""
    grey = classify(Reply(451, "4.7.1 Greylisted, please come back in 5 minutes", P.RCPT))
    rate = classify(Reply(451, "4.7.1 too much mail from 203.0.113.5", P.RCPT))
    assert (grey.verdict, grey.retry_after) == (V.GREYLIST, 300.0)
    assert (rate.verdict, rate.retry_after) == (V.THROTTLE_RATE, None)


def test_per_connection_wording_needs_earlier_messages() -> None:
    """A per-session cap on a fresh connection is not a per-connection limit: it is a rate one."""
    fresh = classify(Reply(421, "too many messages in this connection", P.MAIL, 0))
    used = classify(Reply(421, "too many messages in this connection", P.MAIL, 1))
    assert (fresh.verdict, used.verdict) == (V.THROTTLE_RATE, V.THROTTLE_PER_CONNECTION)


def test_bare_421_at_greeting_is_connections_elsewhere_transient() -> None:
    """A 421 greeting without words means no slot; the same 421 mid-transaction is transient."""
    assert (
        classify(Reply(421, "Service not available", P.CONNECT)).verdict is V.THROTTLE_CONNECTIONS
    )
    assert classify(Reply(421, "Service not available", P.RCPT)).verdict is V.TRANSIENT


def test_classification_carries_enhanced_code_hint_and_rule_name() -> None:
    """The result names the matching rule and the parsed enhanced code and retry hint."""
    result = classify(Reply(451, "4.7.1 Greylisted for 300 seconds", P.RCPT))
    assert result == Classification(V.GREYLIST, "4.7.1", 300.0, "greylist")


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (550, "5.1.1 user unknown", "5.1.1"),
        (450, "[192.5.7.1] 4.2.1 slow", "4.2.1"),  # an IP address is not an enhanced code
        (550, "see 4.2.1 then 5.7.1 blocked", "5.7.1"),  # the one of the reply's class wins
        (None, "4.4.2 timeout", "4.4.2"),
        (250, "Ok", None),
    ],
)
def test_parse_enhanced(code: int | None, text: str, expected: str | None) -> None:
    """Enhanced codes are read from the text, not from addresses, preferring the reply's class."""
    assert parse_enhanced(code, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Greylisted, try again in 300 seconds", 300.0),
        ("try again in 5 minutes", 300.0),
        ("please retry after 2 hours", 7200.0),
        ("Greylisted, see http://x.example or wait 60s", 60.0),
        ("exceeded 100 messages in 1 hour", None),  # a limit's period is not a hint
        ("Try again later", None),
    ],
)
def test_parse_retry_after(text: str, expected: float | None) -> None:
    """Server hints about when to come back are read as seconds; limit periods are not hints."""
    assert parse_retry_after(text) == expected


def test_user_rules_override_defaults() -> None:
    """A user rule put in front of the defaults wins over the default for the same reply."""
    reply = Reply(550, "5.7.1 Our ACME filter says slow down a bit", P.DATA_END)
    assert classify(reply).verdict is V.THROTTLE_RATE
    rules = rules_with([{"name": "acme", "verdict": "message-rejected", "text": "ACME filter"}])
    assert classify(reply, rules) == Classification(V.MESSAGE_REJECTED, "5.7.1", None, "acme")
    assert rules[1:] == DEFAULT_RULES


def test_rule_from_mapping_reads_every_key() -> None:
    """Every config key turns into the matching condition."""
    rule = Rule.from_mapping(
        {
            "name": "acme-per-session",
            "verdict": "throttle-per-connection",
            "codes": [452, "5xx"],
            "enhanced": ["4.7", "x.2.2"],
            "text": "session",
            "phases": ["mail", "RCPT"],
            "min_messages": 2,
            "reply": "some",
        }
    )
    assert rule.codes == {452} and rule.classes == {5}
    assert rule.enhanced == ("4.7", "x.2.2") and rule.phases == {P.MAIL, P.RCPT}
    assert rule.matches(Reply(452, "4.7.0 session full", P.MAIL, 2), "4.7.0")
    assert rule.matches(Reply(552, "5.2.2 session full", P.RCPT, 3), "5.2.2")
    assert not rule.matches(Reply(452, "4.7.0 session full", P.MAIL, 1), "4.7.0")
    assert not rule.matches(Reply(452, "4.7.0 session full", P.DATA, 2), "4.7.0")
    assert not rule.matches(Reply(452, "4.3.0 session full", P.MAIL, 2), "4.3.0")
    assert not rule.matches(Reply(452, "no code here", P.MAIL, 2), None)
    assert not rule.matches(Reply(None, "session", P.MAIL, 2), None)


def test_rule_for_absent_replies_only() -> None:
    """``reply: none`` matches timeouts and disconnects, not real replies."""
    rule = Rule.from_mapping({"name": "silence", "verdict": "ambiguous", "reply": "none"})
    assert rule.matches(Reply(None, "", P.MAIL), None)
    assert not rule.matches(Reply(250, "ok", P.MAIL), None)


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"name": "x", "verdict": "quota", "colour": "red"}, "colour"),
        ({"verdict": "quota"}, "name"),
        ({"name": "x", "verdict": "sunny"}, "verdict"),
        ({"name": "x", "verdict": "quota", "codes": [999]}, "codes"),
        ({"name": "x", "verdict": "quota", "codes": [True]}, "codes"),
        ({"name": "x", "verdict": "quota", "codes": "6xx"}, "codes"),
        ({"name": "x", "verdict": "quota", "codes": {"a": 1}}, "codes"),
        ({"name": "x", "verdict": "quota", "enhanced": ["7.1.1"]}, "enhanced"),
        ({"name": "x", "verdict": "quota", "phases": ["helo"]}, "phases"),
        ({"name": "x", "verdict": "quota", "text": "(unclosed"}, "text"),
        ({"name": "x", "verdict": "quota", "text": 42}, "text"),
        ({"name": "x", "verdict": "quota", "min_messages": -1}, "min_messages"),
        ({"name": "x", "verdict": "quota", "min_messages": True}, "min_messages"),
        ({"name": "x", "verdict": "quota", "reply": "maybe"}, "reply"),
    ],
)
def test_bad_rule_config_is_a_clear_error(mapping: dict[str, object], key: str) -> None:
    """A wrong key, value or regex in a user rule raises ConfigError naming the key."""
    with pytest.raises(ConfigError) as info:
        Rule.from_mapping(mapping)
    assert info.value.key == key
    assert key in str(info.value) or "rule" in str(info.value)


def test_rule_from_non_mapping_is_a_clear_error() -> None:
    """A rule that is not a mapping (a list from a YAML typo) is refused clearly."""
    with pytest.raises(ConfigError, match="mapping"):
        Rule.from_mapping(["name", "x"])  # type: ignore[arg-type]


def test_no_rules_still_gives_a_verdict() -> None:
    """With an empty table an odd reply after DATA is ambiguous, elsewhere transient."""
    assert classify(Reply(250, "ok", P.DATA_END), ()).verdict is V.AMBIGUOUS
    assert classify(Reply(250, "ok", P.MAIL), ()).rule == "unmatched"


def test_odd_codes_have_safe_verdicts() -> None:
    """Codes outside 2xx-5xx are ambiguous after DATA (maybe delivered), else transient."""
    assert classify(Reply(600, "???", P.DATA_END)).verdict is V.AMBIGUOUS
    assert classify(Reply(199, "???", P.MAIL)).verdict is V.TRANSIENT
    assert classify(Reply(552, "odd", P.QUIT)).verdict is V.TRANSIENT


@given(
    code=st.one_of(st.none(), st.integers(min_value=-1000, max_value=1000)),
    text=st.text(max_size=300),
    phase=st.sampled_from(Phase),
    messages=st.integers(min_value=0, max_value=10_000),
)
def test_any_input_gets_a_verdict(code: int | None, text: str, phase: Phase, messages: int) -> None:
    """Whatever the code, text and phase, classify returns a verdict and never raises."""
    result = classify(Reply(code, text, phase, messages))
    assert isinstance(result.verdict, Verdict)
    assert result.retry_after is None or result.retry_after >= 0
    if code is None and phase is not Phase.DATA_END:
        assert result.verdict in (V.TRANSIENT, V.ROUTE_FAILURE)
    if code is not None and 200 <= code < 300:
        assert result.verdict is V.ACCEPTED


@given(text=st.text(max_size=200), phase=st.sampled_from(Phase))
def test_user_rule_always_wins(text: str, phase: Phase) -> None:
    """A catch-all user rule in front of the defaults decides every reply."""
    rules = rules_with([Rule("mine", V.GREYLIST)])
    assert classify(Reply(451, text, phase), rules).rule == "mine"


@pytest.mark.parametrize(
    ("ehlo", "expected"),
    [
        (
            "mx.example.com\nPIPELINING\nLIMITS MAILMAX=100 RCPTMAX=50\n8BITMIME",
            {"MAILMAX": 100, "RCPTMAX": 50},
        ),
        (
            "250-mx.example.com\r\n250-limits RCPTDOMAINMAX=10 mailmax=7\r\n250 SMTPUTF8",
            {"RCPTDOMAINMAX": 10, "MAILMAX": 7},
        ),
        ("LIMITS MAILMAX=abc RCPTMAX=0 FOO=3 BAR MAILMAX=5", {"MAILMAX": 5}),
        ("mx.example.com\nSIZE 1000\nLIMITSX MAILMAX=5", {}),
        ("", {}),
    ],
)
def test_parse_limits_keyword(ehlo: str, expected: dict[str, int]) -> None:
    """RFC 9422 LIMITS values are read from the EHLO reply; malformed or unknown ones ignored."""
    assert parse_limits_keyword(ehlo) == expected
