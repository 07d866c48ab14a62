"""`/api/suppressions` and `/api/feedback-rejections`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import select
from starlette.testclient import TestClient

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent, FeedbackRejection
from contacthub.suppressions import service as suppressions


def test_add_list_show_and_lift(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    with database.write() as session:
        suppressions.suppress(
            session, "gone@example.com", reason="hard_bounce", source="ses", evidence="5.1.1"
        )
    added = client.post(
        "/api/suppressions",
        json={"email": "Ann@Example.com", "evidence": "Asked by phone"},
        headers=api_headers,
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert {k: body[k] for k in ("email", "reason", "source", "evidence", "created_by")} == {
        "email": "ann@example.com",
        "reason": "manual",
        "source": "api",
        "evidence": "Asked by phone",
        "created_by": "api@example.com",
    }
    # Already suppressed: the first suppression stays.
    again = client.post(
        "/api/suppressions", json={"email": "gone@example.com"}, headers=api_headers
    )
    assert (again.status_code, again.json()["code"]) == (409, "already_suppressed")
    assert "hard_bounce" in again.json()["error"]

    listed = client.get("/api/suppressions", headers=api_headers).json()
    assert [s["email"] for s in listed["suppressions"]] == ["ann@example.com", "gone@example.com"]
    assert listed["total"] == 2
    assert listed["counts"] == {"hard_bounce": 1, "complaint": 0, "soft_bounces": 0, "manual": 1}
    assert listed["next_before"] is None
    first = client.get("/api/suppressions?limit=1", headers=api_headers).json()
    second = client.get(
        f"/api/suppressions?limit=1&before={first['next_before']}", headers=api_headers
    ).json()
    assert [s["email"] for s in second["suppressions"]] == ["gone@example.com"]
    filtered = client.get(
        "/api/suppressions", params={"reason": "manual", "search": "ANN"}, headers=api_headers
    ).json()
    assert ([s["email"] for s in filtered["suppressions"]], filtered["total"]) == (
        ["ann@example.com"],
        1,
    )

    shown = client.get("/api/suppressions/GONE@example.com", headers=api_headers)
    assert shown.status_code == 200
    assert shown.json()["evidence"] == "5.1.1"
    lifted = client.delete("/api/suppressions/gone@example.com", headers=api_headers)
    assert lifted.status_code == 204
    missing = client.get("/api/suppressions/gone@example.com", headers=api_headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_suppressed")
    assert (
        client.delete("/api/suppressions/gone@example.com", headers=api_headers).status_code == 404
    )


def test_bad_input_gets_a_clear_400(client: TestClient, api_headers: dict[str, str]) -> None:
    def refused(answer: object) -> tuple[int, str]:
        return answer.status_code, answer.json()["code"]  # type: ignore[attr-defined]

    assert refused(
        client.post("/api/suppressions", json={"email": "nope"}, headers=api_headers)
    ) == (400, "invalid_email")
    assert refused(
        client.post(
            "/api/suppressions",
            json={"email": "a@example.com", "evidence": "x" * 2001},
            headers=api_headers,
        )
    ) == (400, "evidence_too_long")
    assert refused(
        client.post(
            "/api/suppressions",
            json={"email": "a@example.com", "reason": "manual"},
            headers=api_headers,
        )
    ) == (400, "invalid_body")
    assert refused(client.get("/api/suppressions?reason=bounce", headers=api_headers)) == (
        400,
        "invalid_reason",
    )
    assert refused(client.get("/api/suppressions?before=x", headers=api_headers)) == (
        400,
        "invalid_parameter",
    )
    assert refused(client.get("/api/suppressions?limit=0", headers=api_headers)) == (
        400,
        "invalid_parameter",
    )
    assert refused(client.get("/api/suppressions/not-an-address", headers=api_headers)) == (
        400,
        "invalid_email",
    )
    assert client.get("/api/suppressions").status_code == 401
    listed = client.get("/api/suppressions", headers=api_headers).json()
    assert listed["total"] == 0


def test_feedback_rejections(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    with database.write() as session:
        for source, reason in [("ses", "bad_signature")] * 2 + [("imap", "malformed")]:
            session.add(FeedbackRejection(source=source, reason=reason, detail=f"{source} call"))
    answer = client.get("/api/feedback-rejections", headers=api_headers)
    assert answer.status_code == 200
    body = answer.json()
    assert body["counts"] == [
        {"source": "ses", "reason": "bad_signature", "last_day": 2, "last_week": 2, "total": 2},
        {"source": "imap", "reason": "malformed", "last_day": 1, "last_week": 1, "total": 1},
    ]
    reasons = [r["reason"] for r in body["rejections"]]
    assert reasons == ["malformed", "bad_signature", "bad_signature"]
    paged = client.get(
        "/api/feedback-rejections", params={"limit": 2, "source": "ses"}, headers=api_headers
    ).json()
    assert ([r["source"] for r in paged["rejections"]], paged["next_before"]) == (
        ["ses", "ses"],
        None,
    )


def test_the_csv_export_holds_every_match_and_is_audited(
    client: TestClient, api_headers: dict[str, str], database: Database
) -> None:
    with database.write() as session:
        for number in range(3):
            suppressions.suppress(
                session,
                f"p{number}@example.com",
                reason="complaint",
                source="ses",
                evidence="=HYPERLINK(1)",
            )
        suppressions.suppress(session, "other@example.org", reason="hard_bounce", source="imap")
    answer = client.get(
        "/api/suppressions",
        params={"reason": "complaint", "limit": 1},
        headers={**api_headers, "Accept": "text/csv"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0].startswith("email,reason,source,evidence,delivery_id,issue")
    assert [line.split(",")[0] for line in lines[1:]] == [
        "p2@example.com",
        "p1@example.com",
        "p0@example.com",
    ]
    assert "'=HYPERLINK(1)" in lines[1]  # never a formula in a spreadsheet
    with database.read() as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "suppression.list_exported")
        ).all()
        assert json.loads(event.details or "{}") == {"suppressions": 3, "reason": "complaint"}
