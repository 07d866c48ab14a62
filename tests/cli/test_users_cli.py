"""`contacthub user …` and `contacthub token …`, checked against the store and the live API."""

from __future__ import annotations

import json
from typing import Any

from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from contacthub.cli.main import app
from contacthub.storage.database import Database
from contacthub.users import service as users
from tests import factories
from tests.admin.reading import audit_actions
from tests.cli.conftest import Cli

PASSWORD = "a long enough password"


def run(cli: Cli, stdin: str, *args: str) -> Result:
    """A command that reads standard input (a password)."""
    return CliRunner().invoke(app, list(args), env=cli.env, input=stdin)


def create_user(cli: Cli, email: str = "ada@example.com", *extra: str) -> Any:
    result = run(
        cli, PASSWORD + "\n", "user", "create", email, "--password-stdin", *extra, "--json"
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def signs_in(database: Database, email: str, password: str) -> bool:
    return not isinstance(factories.sign_in(database, email, password), Exception)


def test_user_create_from_stdin(cli: Cli, database: Database) -> None:
    record = create_user(cli, "Ada@Example.com", "--name", "Ada Lovelace")
    assert (record["email"], record["name"], record["enabled"]) == (
        "ada@example.com",
        "Ada Lovelace",
        True,
    )
    assert signs_in(database, "ada@example.com", PASSWORD)
    assert ("cli", "user.created", "ada@example.com") in audit_actions(database)


def test_user_create_asks_for_the_password_twice(cli: Cli, database: Database) -> None:
    result = run(cli, f"{PASSWORD}\n{PASSWORD}\n", "user", "create", "bob@example.com")
    assert result.exit_code == 0, result.output
    assert "bob@example.com" in result.stdout
    assert PASSWORD not in result.stdout
    assert signs_in(database, "bob@example.com", PASSWORD)


def test_user_create_refuses_bad_input(cli: Cli) -> None:
    create_user(cli)
    for stdin, args, code in [
        ("short\n", ("carol@example.com",), "(invalid_password)"),
        (PASSWORD + "\n", ("not an address",), "(invalid_email)"),
        (PASSWORD + "\n", ("ADA@example.com",), "(user_exists)"),
    ]:
        result = run(cli, stdin, "user", "create", *args, "--password-stdin")
        assert result.exit_code == 1, args
        assert code in " ".join(result.stderr.split()), (args, result.stderr)
    assert [u["email"] for u in cli.json("user", "list")] == ["ada@example.com"]


def test_user_list(cli: Cli) -> None:
    assert cli.json("user", "list") == []
    create_user(cli, "bob@example.com")
    create_user(cli, "ada@example.com")
    listed = cli.json("user", "list")
    assert [u["email"] for u in listed] == ["ada@example.com", "bob@example.com"]
    assert listed[0]["last_sign_in_at"] is None
    table = cli.ok("user", "list")
    assert "ada@example.com" in table
    assert "bob@example.com" in table


def test_user_set_password(cli: Cli, database: Database) -> None:
    create_user(cli)
    result = run(
        cli, "a brand new password\n", "user", "set-password", "ada@example.com", "--password-stdin"
    )
    assert result.exit_code == 0, result.output
    assert not signs_in(database, "ada@example.com", PASSWORD)
    assert signs_in(database, "ada@example.com", "a brand new password")
    short = run(cli, "short\n", "user", "set-password", "ada@example.com", "--password-stdin")
    assert short.exit_code == 1
    assert "(invalid_password)" in short.stderr
    unknown = run(cli, PASSWORD + "\n", "user", "set-password", "x@example.com", "--password-stdin")
    assert unknown.exit_code == 1
    assert "(unknown_user)" in unknown.stderr
    assert ("cli", "user.password_set", "ada@example.com") in audit_actions(database)


def test_user_set_password_lifts_a_lock(cli: Cli, database: Database) -> None:
    create_user(cli)
    for _ in range(users.MAX_FAILED_SIGN_INS):
        factories.sign_in(database, "ada@example.com", "wrong password")
    assert not signs_in(database, "ada@example.com", PASSWORD)
    assert cli.json("user", "list")[0]["locked_until"] is not None
    run(cli, PASSWORD + "\n", "user", "set-password", "ada@example.com", "--password-stdin")
    assert cli.json("user", "list")[0]["locked_until"] is None
    assert signs_in(database, "ada@example.com", PASSWORD)


def test_user_disable_and_enable(cli: Cli, database: Database) -> None:
    create_user(cli, "ada@example.com")
    # The last enabled user cannot be disabled: nobody could sign in any more.
    assert "(last_user)" in cli.fails("user", "disable", "ada@example.com")
    create_user(cli, "bob@example.com")
    assert cli.json("user", "disable", "ada@example.com")["enabled"] is False
    assert not signs_in(database, "ada@example.com", PASSWORD)
    assert cli.json("user", "enable", "ada@example.com")["enabled"] is True
    assert signs_in(database, "ada@example.com", PASSWORD)
    assert "(unknown_user)" in cli.fails("user", "disable", "nobody@example.com")
    actions = [a[1:] for a in audit_actions(database) if a[0] == "cli"]
    assert ("user.disabled", "ada@example.com") in actions
    assert ("user.enabled", "ada@example.com") in actions


def test_token_create_prints_it_once_and_it_works(
    cli: Cli, client: TestClient, database: Database
) -> None:
    create_user(cli)
    record = cli.json("token", "create", "--user", "ada@example.com", "--name", "deploy")
    token = record["token"]
    assert token.startswith("cht_")
    assert (record["user"], record["name"], record["status"]) == (
        "ada@example.com",
        "deploy",
        "active",
    )
    answer = client.get("/api/users", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    listed = cli.json("token", "list")
    assert [(t["name"], t["prefix"]) for t in listed] == [("deploy", token[:12])]
    assert "token" not in listed[0]
    assert token not in cli.ok("token", "list")
    table = cli.ok("token", "create", "--user", "ada@example.com")
    assert "shown once" in table
    assert ("cli", "token.created", token[:12]) in audit_actions(database)


def test_token_create_with_an_expiry(cli: Cli) -> None:
    create_user(cli)
    record = cli.json("token", "create", "--user", "ada@example.com", "--expires", "2999-01-31")
    assert record["expires_at"] == "2999-01-31T00:00:00+00:00"
    message = cli.fails("token", "create", "--user", "ada@example.com", "--expires", "2020-01-31")
    assert "The expiry must be in the future. (invalid_expiry)" in message
    assert "(invalid_expiry)" in cli.fails(
        "token", "create", "--user", "ada@example.com", "--expires", "soon"
    )
    assert "(unknown_user)" in cli.fails("token", "create", "--user", "x@example.com")
    assert len(cli.json("token", "list")) == 1


def test_token_revoke(cli: Cli, client: TestClient, database: Database) -> None:
    create_user(cli)
    record = cli.json("token", "create", "--user", "ada@example.com")
    revoked = cli.json("token", "revoke", str(record["id"]))
    assert revoked["status"] == "revoked"
    answer = client.get("/api/users", headers={"Authorization": f"Bearer {record['token']}"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "token_revoked"
    assert cli.json("token", "list")[0]["status"] == "revoked"
    assert "(unknown_token)" in cli.fails("token", "revoke", "999")
    assert ("cli", "token.revoked", record["prefix"]) in audit_actions(database)


def test_a_disabled_users_token_is_refused(cli: Cli, client: TestClient) -> None:
    create_user(cli, "ada@example.com")
    create_user(cli, "bob@example.com")
    token = cli.json("token", "create", "--user", "ada@example.com")["token"]
    cli.ok("user", "disable", "ada@example.com")
    answer = client.get("/api/users", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "user_disabled"
