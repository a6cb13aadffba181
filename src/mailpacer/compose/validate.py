"""Validation of a whole campaign before anything is sent (issue 4, DESIGN §2).

One streaming pass over the CSV (memory: the set of seen addresses, not the rows) checks every
row: cell count, address syntax (DNS optional), duplicates, language, the attachment column and
line breaks in values that go into headers. The templates are checked statically (syntax, which
variables each language needs: a missing column is reported with the first row it affects) and
then one real row per language is rendered end to end, QR codes and attachments included.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from mailpacer.compose.attachments import AttachmentError, resolve_inside
from mailpacer.compose.composer import Composer
from mailpacer.compose.recipients import AddressChecker, RecipientsFile, make_recipient
from mailpacer.compose.tables import TableFormat
from mailpacer.compose.template import Language, Template, load_template
from mailpacer.core.errors import InputError, Problem

MAX_LISTED = 1000  #: row problems listed one by one; the rest are counted in one summary line


@dataclass
class CampaignCheck:
    """The outcome of :func:`validate_campaign`."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    valid: int = 0  #: rows that will be sent
    skip_rows: frozenset[int] = frozenset()  #: duplicates, and invalid rows when skip_invalid
    rows: int = 0  #: data rows read (blank lines excluded)
    fatal: bool = False  #: a problem that --skip-invalid cannot skip (template, header, file)
    skip_invalid: bool = False

    @property
    def ok(self) -> bool:
        """True when sending may start: no problems, or only row problems under skip_invalid."""
        if self.fatal:
            return False
        return self.valid > 0 and (self.skip_invalid or not self.problems)

    def raise_for_problems(self) -> None:
        """Raise :class:`InputError` listing the problems unless :attr:`ok`."""
        if self.ok:
            return
        problems = list(self.problems)
        if not problems:
            problems.append(Problem("no valid recipients: nothing to send"))
        raise InputError(problems)

    def __repr__(self) -> str:
        return (
            f"<CampaignCheck rows={self.rows} valid={self.valid} problems={len(self.problems)} "
            f"warnings={len(self.warnings)} skipped={len(self.skip_rows)} ok={self.ok}>"
        )


class _Collector:
    """Problems by row, listed up to :data:`MAX_LISTED`, counted beyond."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.listed: list[Problem] = []
        self.unlisted = 0
        self.bad_rows: set[int] = set()

    def add(self, row: int, message: str) -> None:
        self.bad_rows.add(row)
        if len(self.listed) < MAX_LISTED:
            self.listed.append(Problem(message, file=self.path, row=row))
        else:
            self.unlisted += 1


def validate_campaign(
    recipients_csv: Path,
    template_dir: Path,
    *,
    sender: str,
    check_dns: bool = False,
    skip_invalid: bool = False,
    fmt: TableFormat | None = None,
) -> CampaignCheck:
    """Check the whole campaign; never raises for bad input, see :meth:`CampaignCheck.ok`."""
    result = CampaignCheck(skip_invalid=skip_invalid)
    template: Template | None = None
    try:
        template = load_template(Path(template_dir))
    except InputError as exc:
        result.problems.extend(exc.problems)
        result.fatal = True
    _, sender_address = parseaddr(sender)
    if "@" not in sender_address or "\n" in sender or "\r" in sender:
        result.problems.append(
            Problem(f"sender {sender!r} is not an address such as 'Team <team@example.com>'")
        )
        result.fatal = True
    try:
        source = RecipientsFile(Path(recipients_csv), fmt)
    except InputError as exc:
        result.problems.extend(exc.problems)
        result.fatal = True
        return result
    try:
        samples = _scan(source, template, result, AddressChecker(check_dns=check_dns))
    except InputError as exc:  # unreadable mid-file (not UTF-8, CSV syntax): nothing can be trusted
        result.problems.extend(exc.problems)
        result.fatal = True
        return result
    if template is not None and not result.fatal:
        _render_samples(Path(recipients_csv), template, sender, samples, result)
    return result


def _scan(
    source: RecipientsFile,
    template: Template | None,
    result: CampaignCheck,
    addresses: AddressChecker,
) -> dict[str, tuple[int, dict[str, str]]]:
    """The streaming pass; returns the first valid row of each language (for sample renders)."""
    header = source.header
    width = len(header)
    name = source.name
    columns = set(header)
    bad = _Collector(name)
    base_dir = source.path.resolve().parent
    email_at = header.index("email")
    language_at = header.index("language") if "language" in header else None
    attachment_column = template.attachment_column if template else "attachment"
    attachment_at = header.index(attachment_column) if attachment_column in header else None
    missing = _missing_by_language(template, columns)
    header_columns = {"name"} | (
        set().union(*(lang.subject_variables for lang in template.languages.values()))
        if template
        else set()
    )
    header_at = [i for i, column in enumerate(header) if column in header_columns]
    languages: dict[str, Language | None] = {}
    attachments: dict[str, str | None] = {}
    first_row: dict[str, int] = {}
    affected: dict[str, int] = {}
    fallbacks: dict[str, int] = {}  #: unknown language value -> rows sent in the fallback
    samples: dict[str, tuple[int, dict[str, str]]] = {}
    seen: dict[str, int] = {}
    duplicates: list[int] = []
    for row, cells in source.rows():
        result.rows += 1
        if len(cells) != width:
            bad.add(row, source.ragged(row, cells).message)
            continue
        email = cells[email_at].strip()
        key = email.lower()
        if not email:
            bad.add(row, "empty email address")
        elif (reason := addresses.problem(email)) is not None:
            bad.add(row, f"invalid address {email!r}: {reason}")
        elif key in seen:
            duplicates.append(row)
            if len(result.warnings) < MAX_LISTED:
                result.warnings.append(
                    Problem(
                        f"duplicate recipient {email!r} (first in row {seen[key]}); skipped",
                        file=name,
                        row=row,
                    )
                )
            continue
        else:
            seen[key] = row
        sample_code: str | None = None
        for i in header_at:
            if "\r" in cells[i] or "\n" in cells[i]:
                bad.add(
                    row,
                    f"column {header[i]!r} goes into a header and contains a line break; refused",
                )
        if template is not None:
            value = cells[language_at].strip() if language_at is not None else ""
            if value not in languages:
                languages[value] = template.language_for(value)
                if (
                    value
                    and languages[value] is not None
                    and template.match_language(value) is None
                ):
                    fallbacks[value] = 0
            language = languages[value]
            if value in fallbacks:
                fallbacks[value] += 1
            if language is None:
                have = ", ".join(template.languages)
                what = f"unknown language {value!r}" if value else "no language given"
                bad.add(row, f"{what} and template.toml has no fallback_language (have: {have})")
            elif language.code in missing:
                first_row.setdefault(language.code, row)
                affected[language.code] = affected.get(language.code, 0) + 1
                bad.bad_rows.add(row)
            elif language.code not in samples:
                sample_code = language.code
        if attachment_at is not None and (path := cells[attachment_at].strip()):
            if path not in attachments:
                try:
                    resolve_inside(base_dir, path)
                    attachments[path] = None
                except AttachmentError as exc:
                    attachments[path] = f"attachment {exc}"
            if (reason := attachments[path]) is not None:
                bad.add(row, reason)
        # the sample of a language is its first row that passed *every* check above: a row
        # already reported (a missing attachment) must not fail the template's test render too
        if sample_code is not None and row not in bad.bad_rows:
            samples[sample_code] = (row, make_recipient(header, row, cells).variables)
    mismatches = []
    for code, variables in missing.items():
        if code not in first_row:
            continue  # no row uses this language
        for variable, used_at in variables.items():
            close = difflib.get_close_matches(variable, header, n=1)
            hint = f"; did you mean column {close[0]!r}?" if close else ""
            message = (
                f"missing variable {variable!r} (used in {used_at}): the CSV has no such column; "
                f"{affected[code]} row(s) in language {code!r} need it{hint}"
            )
            mismatches.append(Problem(message, file=name, row=first_row[code]))
    bad.listed[:0] = mismatches
    for value, count in fallbacks.items():
        result.warnings.append(
            Problem(
                f"language {value!r} has no template folder; {count} row(s) get the fallback "
                f"{template.fallback_language if template else ''!r}",
                file=name,
            )
        )
    if bad.unlisted:
        bad.listed.append(
            Problem(f"... and {bad.unlisted} more row problems not listed", file=name)
        )
    result.problems.extend(bad.listed)
    result.skip_rows = frozenset(duplicates) | (
        bad.bad_rows if result.skip_invalid else frozenset()
    )
    result.valid = (
        result.rows - len(duplicates) - len(bad.bad_rows)
    )  # disjoint: duplicates skip checks
    return samples


def _missing_by_language(template: Template | None, columns: set[str]) -> dict[str, dict[str, str]]:
    """Per language, the variables its templates need that the CSV has no column for."""
    if template is None:
        return {}
    missing = {}
    for code, language in template.languages.items():
        absent = {v: where for v, where in language.variables.items() if v not in columns}
        if absent:
            missing[code] = absent
    return missing


def _render_samples(
    recipients_csv: Path,
    template: Template,
    sender: str,
    samples: dict[str, tuple[int, dict[str, str]]],
    result: CampaignCheck,
) -> None:
    """Render the first valid row of each language end to end (QR codes, attachments, MIME)."""
    composer = Composer(
        template, sender=sender, campaign_key="validate", base_dir=recipients_csv.resolve().parent
    )
    for row, variables in samples.values():
        try:
            composer.render(variables)
        except InputError as exc:
            for problem in exc.problems:
                result.problems.append(Problem(problem.message, file=str(recipients_csv), row=row))
            result.fatal = True  # a template that fails on a real row fails on others too
