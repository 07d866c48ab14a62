"""`contacthub cors add|list|remove`."""

from __future__ import annotations

from sqlalchemy import select

from contacthub.storage.database import Database
from contacthub.storage.models import AuditEvent
from tests.cli.conftest import Cli


def test_add_list_remove(cli: Cli, database: Database) -> None:
    added = cli.json("cors", "add", "HTTPS://Shop.Example.com/")
    assert added["origin"] == "https://shop.example.com"
    cli.ok("cors", "add", "http://localhost:3000")

    table = cli.ok("cors", "list")
    assert "https://shop.example.com" in table
    listed = cli.json("cors", "list")
    assert [o["origin"] for o in listed] == ["http://localhost:3000", "https://shop.example.com"]

    # By origin, in any spelling that means it, or by id.
    assert cli.json("cors", "remove", "https://SHOP.example.com:443")["id"] == added["id"]
    local = listed[0]["id"]
    assert cli.json("cors", "remove", str(local))["origin"] == "http://localhost:3000"
    assert cli.json("cors", "list") == []
    assert "No cors origins." in cli.ok("cors", "list")

    with database.read() as session:
        events = session.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
    assert [tuple(e) for e in events] == [
        ("cli", "cors.origin_added"),
        ("cli", "cors.origin_added"),
        ("cli", "cors.origin_removed"),
        ("cli", "cors.origin_removed"),
    ]


def test_errors_exit_1_with_their_code(cli: Cli) -> None:
    cli.ok("cors", "add", "https://shop.example.com")
    assert "(origin_exists)" in cli.fails("cors", "add", "https://shop.example.com:443")
    assert "(invalid_origin)" in cli.fails("cors", "add", "https://shop.example.com/cart")
    assert "(unknown_origin)" in cli.fails("cors", "remove", "https://other.example.com")
    assert "(unknown_origin)" in cli.fails("cors", "remove", "4242")
    assert "(invalid_origin)" in cli.fails("cors", "remove", "nonsense")
    assert len(cli.json("cors", "list")) == 1
