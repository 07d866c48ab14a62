"""Retention policies: the rules of each input, and what the audit log records."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from contacthub.errors import InvalidInput, NotFound
from contacthub.retention import policies
from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent


@pytest.mark.parametrize(
    ("kind", "days", "activity_type", "code"),
    [
        ("logs", 30, "", "invalid_kind"),
        ("Activities", 30, "", "invalid_kind"),
        ("activities", 0, "", "invalid_days"),
        ("activities", -5, "", "invalid_days"),
        ("activities", 36_501, "", "invalid_days"),
        ("activities", "thirty", "", "invalid_days"),
        ("activities", "3.5", "", "invalid_days"),
        ("activities", "", "", "invalid_days"),
        ("activities", "٣٠", "", "invalid_days"),  # Arabic-Indic digits: not ASCII
        ("activities", True, "", "invalid_days"),
        ("activities", 30, "page visit", "invalid_code_name"),
        ("audit_log", 30, "pagevisit", "invalid_activity_type"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    database: Database, kind: str, days: int | str, activity_type: str, code: str
) -> None:
    with database.write() as session, pytest.raises(InvalidInput) as refused:
        policies.set_policy(session, kind, days, activity_type=activity_type, actor="tests")
    assert refused.value.code == code, refused.value.message
    with database.read() as session:
        assert policies.list_policies(session) == []


def test_setting_replacing_and_removing_are_audited(database: Database) -> None:
    with database.write() as session:
        policies.set_policy(session, "audit_log", " 365 ", actor="ada@example.com")
        policies.set_policy(session, "activities", 30, actor="ada@example.com")
        policies.set_policy(
            session, "activities", 7, activity_type=" click ", actor="ada@example.com"
        )
        policies.set_policy(session, "activities", 30, actor="ada@example.com")  # unchanged
        policies.set_policy(session, "audit_log", 730, actor="cli")
    with database.read() as session:
        listed = [(p.kind, p.activity_type, p.days) for p in policies.list_policies(session)]
        assert listed == [
            ("activities", "", 30),
            ("activities", "click", 7),
            ("audit_log", "", 730),
        ]
        assert policies.get_policy(session, "audit_log").updated_by == "cli"
    with database.write() as session:
        policies.remove_policy(session, "activities", activity_type="click", actor="cli")
        with pytest.raises(NotFound) as missing:
            policies.remove_policy(session, "email_hits", actor="cli")
        assert missing.value.code == "policy_not_found"
    with database.read() as session:
        recorded = [
            (e.actor, e.action, e.subject, json.loads(e.details or "null"))
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]
    assert recorded == [
        ("ada@example.com", "retention.policy_set", "audit_log", {"days": 365}),
        ("ada@example.com", "retention.policy_set", "activities", {"days": 30}),
        ("ada@example.com", "retention.policy_set", "activities:click", {"days": 7}),
        ("cli", "retention.policy_set", "audit_log", {"days": 730, "previous": 365}),
        ("cli", "retention.policy_removed", "activities:click", {"days": 7}),
    ]
