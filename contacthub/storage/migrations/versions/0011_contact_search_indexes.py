"""contact search and sort through indexes (issue 13): email prefix, last name and email
order, and a trigram index of names

At a million contacts every search and every sorted page read the whole contacts table
(contacthub/contacts/search.py). This adds, on both databases:
- `ix_contacts_last_name_sort` on (lower(last_name), id) and `ix_contacts_email_sort` on
  (lower(email), id): the sorted list reads a page of one of them, in either direction; the
  blanks (NULL) are read apart, by `IS NULL` on the same index (search.py, `_ordered_page`).

On PostgreSQL:
- `ix_contacts_email_pattern` on lower(email) text_pattern_ops: the email prefix search,
  `lower(email) LIKE lower(:pattern)`, becomes an index range;
- the pg_trgm extension and `ix_contacts_name_trigram`, a GIN index (gin_trgm_ops) on the
  lower-cased full name `coalesce(first_name, '') || ' ' || coalesce(last_name, '')`: the name
  search `LIKE '%q%'` reads it. Where the extension cannot be created (a role without the
  privilege: pg_trgm is a trusted extension since PostgreSQL 13, but the role still needs CREATE
  on the database), the migration goes on without the index and the name search reads the table,
  as before (docs/decisions.md, "Contact search without pg_trgm"). Downgrade drops the index but
  leaves the extension, which other things may use.

On SQLite:
- `ix_contacts_email_nocase` on (email COLLATE NOCASE): what SQLite's LIKE optimisation needs
  for `email LIKE 'q%' ESCAPE '\\'` (LIKE ignores ASCII case);
- `contacts_name_trigrams`, a contentless FTS5 table (`tokenize='trigram'`, SQLite >= 3.34) of
  the same full name, rowid = contacts.id, only for contacts with a first or last name, kept in
  step by three triggers on contacts (insert, update of the names, delete: the FTS5 pattern for
  external content, `'delete'` with the old values). Contentless, because contacts has no
  full-name column for an external-content table to read; the search only asks it for rowids
  (MATCH) and checks each candidate with the LIKE itself. Where FTS5 or its trigram tokenizer is
  missing, the table is not made and the search reads the contacts table, as before.
  A later migration that rebuilds `contacts` in batch mode (copy and rename) drops these
  triggers with the old table, and loses the expression indexes too (SQLite's reflection
  cannot read them): it must create them again (tests/contacts/test_search_indexes.py fails
  otherwise).

The models declare the two sort indexes; the dialect-only objects are listed in
`contacthub.storage.models.SEARCH_OBJECTS`, which `alembic check` leaves out.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 22:30:00.000000
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import exc, text

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FULL_NAME = "coalesce({t}first_name, '') || ' ' || coalesce({t}last_name, '')"
HAS_NAME = "{t}first_name IS NOT NULL OR {t}last_name IS NOT NULL"
TRIGRAMS = "contacts_name_trigrams"


def _sqlite_triggers() -> list[str]:
    new_name, old_name = FULL_NAME.format(t="new."), FULL_NAME.format(t="old.")
    new_has, old_has = HAS_NAME.format(t="new."), HAS_NAME.format(t="old.")
    insert_new = f"INSERT INTO {TRIGRAMS}(rowid, name) SELECT new.id, {new_name} WHERE {new_has};"
    delete_old = (
        f"INSERT INTO {TRIGRAMS}({TRIGRAMS}, rowid, name) "
        f"SELECT 'delete', old.id, {old_name} WHERE {old_has};"
    )
    return [
        f"CREATE TRIGGER {TRIGRAMS}_insert AFTER INSERT ON contacts BEGIN {insert_new} END",
        f"CREATE TRIGGER {TRIGRAMS}_delete AFTER DELETE ON contacts BEGIN {delete_old} END",
        f"CREATE TRIGGER {TRIGRAMS}_update AFTER UPDATE OF first_name, last_name ON contacts "
        f"BEGIN {delete_old} {insert_new} END",
    ]


def _upgrade_sqlite() -> None:
    op.execute("CREATE INDEX ix_contacts_email_nocase ON contacts (email COLLATE NOCASE)")
    try:
        op.execute(
            f"CREATE VIRTUAL TABLE {TRIGRAMS} USING fts5(name, content='', tokenize='trigram')"
        )
    except exc.OperationalError:
        # No FTS5, or SQLite older than 3.34 (no trigram tokenizer): search scans, as before.
        return
    backfill = f"INSERT INTO {TRIGRAMS}(rowid, name) SELECT id, {FULL_NAME.format(t='')} "
    op.execute(backfill + f"FROM contacts WHERE {HAS_NAME.format(t='')}")
    for trigger in _sqlite_triggers():
        op.execute(trigger)


def _upgrade_postgresql() -> None:
    op.execute("CREATE INDEX ix_contacts_email_pattern ON contacts (lower(email) text_pattern_ops)")
    _create_name_trigrams()
    # The planner knows how selective an expression (lower(email), lower(last_name)) is only
    # from the statistics ANALYZE gathers for its index, and autovacuum analyzes a table when
    # its rows change, not when it gets an index. Without them, at a million contacts the search
    # by address walked the primary key for its newest-first page (270 ms) instead of reading
    # the one matching entry of the pattern index (5 ms).
    op.execute("ANALYZE contacts")


def _create_name_trigrams() -> None:
    connection = op.get_bind()
    savepoint = connection.begin_nested()
    try:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except exc.DBAPIError:
        # Not permitted here: the name search reads the table, as before (docstring above).
        savepoint.rollback()
        return
    savepoint.commit()
    op.execute(
        "CREATE INDEX ix_contacts_name_trigram ON contacts USING gin "
        f"((lower({FULL_NAME.format(t='')})) gin_trgm_ops)"
    )


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contacts_last_name_sort", [text("lower(last_name)"), "id"], unique=False
        )
        batch_op.create_index("ix_contacts_email_sort", [text("lower(email)"), "id"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgresql()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {TRIGRAMS}_{name}")
        op.execute(f"DROP TABLE IF EXISTS {TRIGRAMS}")
        op.execute("DROP INDEX ix_contacts_email_nocase")
    else:
        op.execute("DROP INDEX IF EXISTS ix_contacts_name_trigram")
        op.execute("DROP INDEX ix_contacts_email_pattern")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_email_sort")
        batch_op.drop_index("ix_contacts_last_name_sort")
