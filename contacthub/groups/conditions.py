"""The condition language of dynamic groups: JSON in, checked frozen dataclasses out.

A condition is a tree of nodes (docs/groups.md has the whole language with examples):
`all` / `any` / `not`, and the leaves `field`, `consent`, `activity`, `email` and `group`.
`parse_conditions` checks the shape and every reference (consents, activity types, channels,
newsletters, issues, groups must exist) and answers the first fault as `InvalidInput` whose
`field` is the JSON path of the faulty node, e.g. `conditions.all[2].at_least`.

References are stored so that they never break: consents, activity types, channels and
newsletters cannot be renamed, so they are kept by name; groups can be, so a group node is
stored by id (`{"group_id": 12}`, what `dump_conditions` answers) and shown by its current name
(`{"group": "Customers"}`, what `dump_conditions(..., for_display=True)` answers). Both
spellings are accepted on input.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contacthub.activities import repository as activity_repository
from contacthub.activities.rules import BUILT_IN_TYPES, MAX_URL_LENGTH, MAX_VALUE_LENGTH
from contacthub.channels import repository as channel_repository
from contacthub.consents import repository as consent_repository
from contacthub.contacts.fields import _country, _state
from contacthub.email import repository as email_repository
from contacthub.errors import InvalidInput
from contacthub.identifiers import DAY, MAX_ID, refuse_nul_within
from contacthub.storage.models import ContactGroup

ROOT = "conditions"
MAX_DEPTH = 10
MAX_NODES = 100
MAX_LIST = 1_000
MAX_TEXT = 1_000
MAX_DAYS = 36_500
MAX_AT_LEAST = 1_000_000

TEXT_FIELDS = (
    "email",
    "first_name",
    "middle_name",
    "last_name",
    "company_name",
    "job_title",
    "mobile_phone",
    "business_phone",
    "address1",
    "city",
    "zip",
    "notes",
)
CODE_FIELDS = ("country", "state")
DATE_FIELDS = ("birthday", "created_at", "updated_at")
TEXT_OPS = ("equals", "contains", "starts_with", "ends_with", "in", "is_empty")
CODE_OPS = ("equals", "in", "is_empty")
DATE_OPS = ("before", "after", "within_days", "is_empty")
CONSENT_STATES = ("agreed", "revoked", "never")
EMAIL_EVENTS = ("subscribed", "unsubscribed", "opened", "clicked")
# The node kinds, by the property that names each.
KINDS = ("all", "any", "not", "field", "consent", "activity", "email", "group", "group_id")
_PROPERTIES = {
    "all": ("all",),
    "any": ("any",),
    "not": ("not",),
    "field": ("field", "op", "value"),
    "consent": ("consent", "state", "revision"),
    "activity": (
        "activity",
        "url_contains",
        "value_equals",
        "channel",
        "at_least",
        "within_days",
        "between",
    ),
    "email": ("email", "newsletter", "issue", "human_only", "within_days"),
    "group": ("group",),
    "group_id": ("group_id",),
}


# -- the nodes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every item holds (an empty list: always true)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one item holds (an empty list: never true)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The item does not hold."""

    item: Condition


@dataclass(frozen=True, slots=True)
class FieldCondition:
    """A contact field compared with a value.

    `value` is a str (equals, contains, starts_with, ends_with), a tuple of str (in), a date
    (before, after), an int (within_days) or None (is_empty). Country and state codes are
    upper-cased.
    """

    field: str
    op: str
    value: str | tuple[str, ...] | date | int | None


@dataclass(frozen=True, slots=True)
class ConsentCondition:
    """The contact's latest event for a consent: an agreement (to `revision`, when given), a
    revocation, or none at all (`never`)."""

    consent_id: int
    code_name: str
    state: str
    revision: int | None = None
    revision_id: int | None = None


@dataclass(frozen=True, slots=True)
class ActivityCondition:
    """At least `at_least` activities of a type, optionally narrowed by URL, value, channel and
    time (`within_days` of now, or `between` two UTC days, both included)."""

    type: str
    url_contains: str | None = None
    value_equals: str | None = None
    channel: str | None = None
    channel_id: int | None = None
    at_least: int = 1
    within_days: int | None = None
    between: tuple[date, date] | None = None


@dataclass(frozen=True, slots=True)
class EmailCondition:
    """Email engagement with a newsletter: subscribed or unsubscribed now, or opened / clicked
    (one issue, or any of the newsletter's), by a human only unless `human_only` is false."""

    event: str
    newsletter_id: int
    newsletter: str
    issue_id: int | None = None
    issue_guid: str | None = None
    human_only: bool = True
    within_days: int | None = None


@dataclass(frozen=True, slots=True)
class GroupCondition:
    """A member of another group now. Kept by id: renaming that group changes nothing here."""

    group_id: int
    name: str


Condition = (
    AllOf | AnyOf | Not | FieldCondition | ConsentCondition | ActivityCondition | EmailCondition
) | GroupCondition


# -- parsing -------------------------------------------------------------------------------------


def parse_conditions(session: Session, raw: object, *, field: str = ROOT) -> Condition:
    """Check a condition tree as JSON decoded it, references included; answer its nodes.

    Raises InvalidInput on the first fault, with `field` = the JSON path of the faulty node
    (below `field`, which names the whole tree) and the code `invalid_conditions`, or
    `unknown_consent`, `unknown_revision`, `unknown_activity_type`, `unknown_channel`,
    `unknown_newsletter`, `unknown_issue`, `unknown_group` for a reference to nothing, or
    `nul_character`.
    """
    refuse_nul_within(raw, field)
    return _Parser(session).node(raw, field, 1)


def load_conditions(session: Session, stored: str) -> Condition:
    """The condition a group stores (`contact_groups.conditions`, JSON text), checked again."""
    try:
        raw = json.loads(stored)
    except ValueError:
        raise _fault(ROOT, "is not valid JSON.") from None
    return parse_conditions(session, raw)


def _fault(path: str, message: str, code: str = "invalid_conditions") -> InvalidInput:
    return InvalidInput(f"{path}: {message}", code=code, field=path)


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(value: object, path: str, minimum: int, maximum: int) -> int:
    if not _is_whole(value) or not minimum <= value <= maximum:  # type: ignore[operator]
        raise _fault(path, f"must be a whole number from {minimum:,} to {maximum:,}.")
    return value  # type: ignore[return-value]


def _text(value: object, path: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value:
        raise _fault(path, "must be a non-empty string.")
    if len(value) > limit:
        raise _fault(path, f"is longer than {limit:,} characters.")
    return value


def _day(value: object, path: str) -> date:
    if isinstance(value, str) and DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _fault(path, "must be a date as YYYY-MM-DD, e.g. 2024-05-31.")


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _fault(path, "must be a non-empty list.")
    if len(value) > MAX_LIST:
        raise _fault(path, f"has more than {MAX_LIST:,} items.")
    return value


def _one_of(value: object, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fault(path, f"must be one of {', '.join(choices)}.")
    return value


class _Parser:
    """One parse: counts the nodes, and remembers the lookups it made."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.nodes = 0

    def node(self, raw: object, path: str, depth: int) -> Condition:
        if depth > MAX_DEPTH:
            raise _fault(path, f"conditions nest at most {MAX_DEPTH} levels deep.")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _fault(path, f"a condition tree has at most {MAX_NODES} nodes.")
        if not isinstance(raw, dict):
            raise _fault(path, "must be a JSON object (a condition).")
        kinds = [kind for kind in KINDS if kind in raw]
        if len(kinds) != 1:
            found = "none" if not kinds else " and ".join(kinds)
            raise _fault(
                path, f"a condition has exactly one of {', '.join(KINDS)} ({found} given)."
            )
        kind = kinds[0]
        allowed = _PROPERTIES[kind]
        for key in raw:
            if key not in allowed:
                raise _fault(
                    f"{path}.{key}",
                    f"unknown property (a {kind} condition has {', '.join(allowed)}).",
                )
        props: dict[str, Any] = raw
        if kind in ("all", "any"):
            items = props[kind]
            if not isinstance(items, list):
                raise _fault(f"{path}.{kind}", "must be a list of conditions.")
            if len(items) > MAX_LIST:
                raise _fault(f"{path}.{kind}", f"has more than {MAX_LIST:,} items.")
            nodes = tuple(
                self.node(item, f"{path}.{kind}[{index}]", depth + 1)
                for index, item in enumerate(items)
            )
            return AllOf(nodes) if kind == "all" else AnyOf(nodes)
        if kind == "not":
            return Not(self.node(props["not"], f"{path}.not", depth + 1))
        if kind == "field":
            return _field(props, path)
        if kind == "consent":
            return self.consent(props, path)
        if kind == "activity":
            return self.activity(props, path)
        if kind == "email":
            return self.email(props, path)
        return self.group(props, path)

    def consent(self, props: Mapping[str, Any], path: str) -> ConsentCondition:
        code_name = _text(props["consent"], f"{path}.consent", 100)
        consent = consent_repository.consent_by_code(self.session, code_name)
        if consent is None:
            raise _fault(
                f"{path}.consent", f"no consent with code name {code_name!r}.", "unknown_consent"
            )
        if "state" not in props:
            raise _fault(f"{path}.state", "is required (agreed, revoked or never).")
        state = _one_of(props["state"], f"{path}.state", CONSENT_STATES)
        if "revision" not in props:
            return ConsentCondition(consent.id, consent.code_name, state)
        if state != "agreed":
            raise _fault(f"{path}.revision", "goes only with the state agreed.")
        number = _whole(props["revision"], f"{path}.revision", 1, MAX_ID)
        revision = consent_repository.revision_by_number(self.session, consent.id, number)
        if revision is None:
            raise _fault(
                f"{path}.revision",
                f"consent {consent.code_name!r} has no revision {number}.",
                "unknown_revision",
            )
        return ConsentCondition(consent.id, consent.code_name, state, number, revision.id)

    def activity(self, props: Mapping[str, Any], path: str) -> ActivityCondition:
        type_name = self.activity_type(props["activity"], f"{path}.activity")
        url = value = channel_name = None
        channel_id = None
        if "url_contains" in props:
            url = _text(props["url_contains"], f"{path}.url_contains", MAX_URL_LENGTH)
        if "value_equals" in props:
            value = _text(props["value_equals"], f"{path}.value_equals", MAX_VALUE_LENGTH)
        if "channel" in props:
            channel_name = _text(props["channel"], f"{path}.channel", 100)
            channel = channel_repository.channel_by_name(self.session, channel_name)
            if channel is None:
                raise _fault(
                    f"{path}.channel", f"no channel named {channel_name!r}.", "unknown_channel"
                )
            channel_id = channel.id
        at_least = 1
        if "at_least" in props:
            at_least = _whole(props["at_least"], f"{path}.at_least", 1, MAX_AT_LEAST)
        within_days = None
        between = None
        if "within_days" in props and "between" in props:
            raise _fault(f"{path}.between", "give within_days or between, not both.")
        if "within_days" in props:
            within_days = _whole(props["within_days"], f"{path}.within_days", 1, MAX_DAYS)
        if "between" in props:
            between = _between(props["between"], f"{path}.between")
        return ActivityCondition(
            type_name, url, value, channel_name, channel_id, at_least, within_days, between
        )

    def activity_type(self, raw: object, path: str) -> str:
        name = _text(raw, path, 100)
        if name.lower() in BUILT_IN_TYPES:
            return name.lower()
        # Custom types are matched ignoring case, as the tracking API and the log match them.
        for stored in activity_repository.all_types(self.session):
            if stored.code_name.lower() == name.lower():
                return stored.code_name
        raise _fault(
            path,
            f"no activity type {name!r} (built-in: {', '.join(sorted(BUILT_IN_TYPES))}, or a "
            "custom type's code name).",
            "unknown_activity_type",
        )

    def email(self, props: Mapping[str, Any], path: str) -> EmailCondition:
        event = _one_of(props["email"], f"{path}.email", EMAIL_EVENTS)
        if "newsletter" not in props:
            raise _fault(f"{path}.newsletter", "is required (the newsletter's name).")
        name = _text(props["newsletter"], f"{path}.newsletter", 100)
        newsletter = email_repository.newsletter_by_name(self.session, name)
        if newsletter is None:
            raise _fault(
                f"{path}.newsletter", f"no newsletter named {name!r}.", "unknown_newsletter"
            )
        issue_id = issue_guid = None
        if "issue" in props:
            if event == "subscribed":
                raise _fault(f"{path}.issue", "goes only with opened, clicked or unsubscribed.")
            issue_id, issue_guid = self.issue(props["issue"], f"{path}.issue", newsletter.id)
        human_only = True
        if "human_only" in props:
            if event not in ("opened", "clicked"):
                raise _fault(f"{path}.human_only", "goes only with opened or clicked.")
            if not isinstance(props["human_only"], bool):
                raise _fault(f"{path}.human_only", "must be true or false.")
            human_only = props["human_only"]
        within_days = None
        if "within_days" in props:
            if event == "subscribed":
                raise _fault(
                    f"{path}.within_days", "goes only with opened, clicked or unsubscribed."
                )
            within_days = _whole(props["within_days"], f"{path}.within_days", 1, MAX_DAYS)
        return EmailCondition(
            event,
            newsletter.id,
            newsletter.name,
            issue_id,
            issue_guid,
            human_only if event in ("opened", "clicked") else True,
            within_days,
        )

    def issue(self, raw: object, path: str, newsletter_id: int) -> tuple[int, str]:
        guid = None
        if isinstance(raw, str) and 32 <= len(raw) <= 38:
            try:
                guid = uuid.UUID(raw)
            except ValueError:
                guid = None
        if guid is None:
            raise _fault(
                path, "must be an issue's GUID, e.g. 06b035b8-6658-4a1b-b1de-5994e4975fb1."
            )
        issue = email_repository.issue_by_guid(self.session, guid)
        if issue is None or issue.newsletter_id != newsletter_id:
            raise _fault(path, f"the newsletter has no issue {guid}.", "unknown_issue")
        return issue.id, str(guid)

    def group(self, props: Mapping[str, Any], path: str) -> GroupCondition:
        if "group_id" in props:
            group_id = _whole(props["group_id"], f"{path}.group_id", 1, MAX_ID)
            found = self.session.execute(
                select(ContactGroup.id, ContactGroup.name).where(ContactGroup.id == group_id)
            ).first()
            if found is None:
                raise _fault(f"{path}.group_id", f"no group with id {group_id}.", "unknown_group")
            return GroupCondition(found.id, found.name)
        name = _text(props["group"], f"{path}.group", 100)
        found = self.session.execute(
            select(ContactGroup.id, ContactGroup.name).where(ContactGroup.name == name)
        ).first()
        if found is None:
            raise _fault(f"{path}.group", f"no group named {name!r}.", "unknown_group")
        return GroupCondition(found.id, found.name)


def _between(raw: object, path: str) -> tuple[date, date]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise _fault(path, 'must be two dates, e.g. ["2024-01-01", "2024-03-31"].')
    start = _day(raw[0], f"{path}[0]")
    end = _day(raw[1], f"{path}[1]")
    if end < start:
        raise _fault(path, "the second date comes before the first.")
    return start, end


def _field(props: Mapping[str, Any], path: str) -> FieldCondition:
    name = props["field"]
    every = TEXT_FIELDS + CODE_FIELDS + DATE_FIELDS
    if not isinstance(name, str) or name not in every:
        raise _fault(f"{path}.field", f"must be one of {', '.join(every)}.")
    ops = TEXT_OPS if name in TEXT_FIELDS else CODE_OPS if name in CODE_FIELDS else DATE_OPS
    if "op" not in props:
        raise _fault(f"{path}.op", f"is required ({', '.join(ops)}).")
    op = props["op"]
    if not isinstance(op, str) or op not in ops:
        raise _fault(f"{path}.op", f"must be one of {', '.join(ops)} for the field {name}.")
    where = f"{path}.value"
    if op == "is_empty":
        if "value" in props:
            raise _fault(where, "is_empty takes no value.")
        return FieldCondition(name, op, None)
    if "value" not in props:
        raise _fault(where, f"is required with the op {op}.")
    value = props["value"]
    if name in CODE_FIELDS:
        check = _country if name == "country" else _state
        if op == "in":
            items = _list(value, where)
            codes = tuple(_code(check, item, f"{where}[{i}]") for i, item in enumerate(items))
            return FieldCondition(name, op, tuple(dict.fromkeys(codes)))
        return FieldCondition(name, op, _code(check, value, where))
    if name in DATE_FIELDS:
        if op == "within_days":
            return FieldCondition(name, op, _whole(value, where, 1, MAX_DAYS))
        return FieldCondition(name, op, _day(value, where))
    if op == "in":
        items = _list(value, where)
        texts = tuple(_text(item, f"{where}[{i}]") for i, item in enumerate(items))
        return FieldCondition(name, op, tuple(dict.fromkeys(texts)))
    return FieldCondition(name, op, _text(value, where))


def _code(check: Any, value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _fault(path, "must be a string.")
    try:
        code: str = check(value)
    except ValueError as error:
        raise _fault(path, f"{error} ({value!r} given).") from None
    return code


# -- the canonical form --------------------------------------------------------------------------


def dump_conditions(condition: Condition, *, for_display: bool = False) -> dict[str, Any]:
    """The canonical JSON form: what `contact_groups.conditions` stores (groups by id).

    With `for_display`, groups are named instead (`{"group": NAME}`), as people read and write
    them; both forms parse back to the same condition.
    """
    if isinstance(condition, AllOf):
        return {"all": [dump_conditions(item, for_display=for_display) for item in condition.items]}
    if isinstance(condition, AnyOf):
        return {"any": [dump_conditions(item, for_display=for_display) for item in condition.items]}
    if isinstance(condition, Not):
        return {"not": dump_conditions(condition.item, for_display=for_display)}
    if isinstance(condition, FieldCondition):
        node: dict[str, Any] = {"field": condition.field, "op": condition.op}
        value = condition.value
        if isinstance(value, date):
            node["value"] = value.isoformat()
        elif isinstance(value, tuple):
            node["value"] = list(value)
        elif value is not None:
            node["value"] = value
        return node
    if isinstance(condition, ConsentCondition):
        node = {"consent": condition.code_name, "state": condition.state}
        if condition.revision is not None:
            node["revision"] = condition.revision
        return node
    if isinstance(condition, ActivityCondition):
        node = {"activity": condition.type}
        if condition.url_contains is not None:
            node["url_contains"] = condition.url_contains
        if condition.value_equals is not None:
            node["value_equals"] = condition.value_equals
        if condition.channel is not None:
            node["channel"] = condition.channel
        node["at_least"] = condition.at_least
        if condition.within_days is not None:
            node["within_days"] = condition.within_days
        if condition.between is not None:
            node["between"] = [day.isoformat() for day in condition.between]
        return node
    if isinstance(condition, EmailCondition):
        node = {"email": condition.event, "newsletter": condition.newsletter}
        if condition.issue_guid is not None:
            node["issue"] = condition.issue_guid
        if condition.event in ("opened", "clicked"):
            node["human_only"] = condition.human_only
        if condition.within_days is not None:
            node["within_days"] = condition.within_days
        return node
    if for_display:
        return {"group": condition.name}
    return {"group_id": condition.group_id}


def dump_conditions_text(condition: Condition) -> str:
    """The canonical form as the JSON text `contact_groups.conditions` stores."""
    return json.dumps(dump_conditions(condition), separators=(",", ":"), ensure_ascii=False)


# -- what a condition depends on -----------------------------------------------------------------


def walk(condition: Condition, path: str = ROOT) -> Iterator[tuple[str, Condition]]:
    """Every node with its JSON path (the same path its input had), parents first."""
    yield path, condition
    if isinstance(condition, AllOf | AnyOf):
        kind = "all" if isinstance(condition, AllOf) else "any"
        for index, item in enumerate(condition.items):
            yield from walk(item, f"{path}.{kind}[{index}]")
    elif isinstance(condition, Not):
        yield from walk(condition.item, f"{path}.not")


def referenced_groups(condition: Condition) -> set[int]:
    """The ids of the groups the condition names (for cycle checks and dependency order)."""
    return {node.group_id for _, node in walk(condition) if isinstance(node, GroupCondition)}


@dataclass(frozen=True, slots=True)
class Dependencies:
    """Which data can change a condition's answer for a contact (besides time passing)."""

    fields: frozenset[str]
    consents: frozenset[int]
    activity_types: frozenset[str]
    newsletters: frozenset[int]
    subscriptions: bool
    email_opens: bool
    email_clicks: bool
    groups: frozenset[int]

    @property
    def activities(self) -> bool:
        """Whether any new activity (of `activity_types`) can change the answer."""
        return bool(self.activity_types)


def depends_on(condition: Condition) -> Dependencies:
    """What the condition reads: fields, consents (ids), activity types, newsletters (ids), the
    subscription status, email opens, email clicks, other groups (ids)."""
    nodes = [node for _, node in walk(condition)]
    emails = [node for node in nodes if isinstance(node, EmailCondition)]
    return Dependencies(
        fields=frozenset(node.field for node in nodes if isinstance(node, FieldCondition)),
        consents=frozenset(node.consent_id for node in nodes if isinstance(node, ConsentCondition)),
        activity_types=frozenset(
            node.type for node in nodes if isinstance(node, ActivityCondition)
        ),
        newsletters=frozenset(node.newsletter_id for node in emails),
        subscriptions=any(node.event in ("subscribed", "unsubscribed") for node in emails),
        email_opens=any(node.event == "opened" for node in emails),
        email_clicks=any(node.event == "clicked" for node in emails),
        groups=frozenset(referenced_groups(condition)),
    )


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A relative window ("within the last `days` days"): the answer can change as time passes,
    when a timestamp of `source` crosses the moment `days` days ago.

    `source` is `field` (then `name` is the field), `activity` (`name`: the activity type) or
    `email` (`name`: opened, clicked or unsubscribed).
    """

    days: int
    source: str
    name: str


def time_windows(condition: Condition) -> tuple[TimeWindow, ...]:
    """The relative windows of the condition, without repeats, in a stable order."""
    windows: dict[TimeWindow, None] = {}
    for _, node in walk(condition):
        if isinstance(node, FieldCondition) and node.op == "within_days":
            windows[TimeWindow(int(node.value), "field", node.field)] = None  # type: ignore[arg-type]
        elif isinstance(node, ActivityCondition) and node.within_days is not None:
            windows[TimeWindow(node.within_days, "activity", node.type)] = None
        elif isinstance(node, EmailCondition) and node.within_days is not None:
            windows[TimeWindow(node.within_days, "email", node.event)] = None
    return tuple(windows)


# -- cycles between groups -----------------------------------------------------------------------


def stored_group_references(stored: str | None, ids_by_name: Mapping[str, int]) -> set[int]:
    """The group ids a stored condition (JSON text) names, read without checking the rest.

    Groups named by name (not the stored form, but a hand-written one) are found in
    `ids_by_name`.
    """
    if not stored:
        return set()
    try:
        raw = json.loads(stored)
    except ValueError:
        return set()
    found: set[int] = set()
    pending = [raw]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            group_id = item.get("group_id")
            if isinstance(group_id, int) and not isinstance(group_id, bool):
                found.add(group_id)
            name = item.get("group")
            if isinstance(name, str) and name in ids_by_name:
                found.add(ids_by_name[name])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def check_no_cycle(session: Session, group_id: int | None, condition: Condition) -> None:
    """Refuse (InvalidInput, code `group_cycle`) a condition for group `group_id` that names,
    directly or through other groups' conditions, that group itself.

    `group_id` is None for a group not created yet: no group can name it, so there is no cycle.
    The error's field is the path of the group node that leads back, its message the chain.
    """
    if group_id is None:
        return
    rows = session.execute(
        select(ContactGroup.id, ContactGroup.name, ContactGroup.conditions).where(
            ContactGroup.conditions.is_not(None)
        )
    ).all()
    names = {
        row.id: row.name for row in session.execute(select(ContactGroup.id, ContactGroup.name))
    }
    ids_by_name = {name: group for group, name in names.items()}
    edges = {row.id: stored_group_references(row.conditions, ids_by_name) for row in rows}
    for path, node in walk(condition):
        if not isinstance(node, GroupCondition):
            continue
        chain = _path_to(node.group_id, group_id, edges)
        if chain is not None:
            shown = " → ".join(repr(names.get(g, f"#{g}")) for g in [group_id, *chain])
            raise _fault(
                path,
                f"this would make a cycle of groups ({shown}): a group cannot contain itself.",
                "group_cycle",
            )


def _path_to(start: int, target: int, edges: Mapping[int, set[int]]) -> list[int] | None:
    """The groups from `start` to `target` following references, breadth first; None if none."""
    previous: dict[int, int | None] = {start: None}
    queue = [start]
    while queue:
        current = queue.pop(0)
        if current == target:
            chain = [current]
            while (before := previous[chain[-1]]) is not None:
                chain.append(before)
            return chain[::-1]
        for following in sorted(edges.get(current, ())):
            if following not in previous:
                previous[following] = current
                queue.append(following)
    return None
