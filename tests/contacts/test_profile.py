"""The contact page's data: consent states, timeline paging, email engagement."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from contacthub.contacts import profile
from contacthub.contacts.fields import CONTACT_FIELDS
from contacthub.contacts.profile import FIELD_LABELS
from contacthub.errors import InvalidInput, NotFound
from contacthub.identifiers import MAX_BIG_ID
from contacthub.storage.database import Database
from tests import factories
from tests.contacts.support import CONSENT, scenario, track


def test_every_contact_field_has_a_label() -> None:
    assert list(FIELD_LABELS) == [f.attribute for f in CONTACT_FIELDS]


def test_the_profile_of_a_contact_with_everything(client: TestClient, database: Database) -> None:
    world = scenario(client, database)
    factories.consent(database, "Newsletter")
    with database.read() as session:
        view = profile.contact_profile(session, world.anna)
    assert view.fields.name == "Anna Smith"
    assert dict(view.fields.labelled)["City"] == "Brno"

    newsletter, tracking = view.consents
    assert (newsletter.code_name, newsletter.agreed, newsletter.history) == ("Newsletter", None, [])
    assert tracking.code_name == CONSENT
    assert tracking.agreed is True
    assert (tracking.agreed_revision, tracking.current_revision, tracking.outdated) == (2, 2, False)
    # Newest first: agreed to revision 2, revoked (revision 2 current then), agreed to 1.
    assert [(e.agreed, e.revision, e.channel) for e in tracking.history] == [
        (True, 2, "Mobile app"),
        (False, 2, "Mobile app"),
        (True, 1, "Mobile app"),
    ]

    items = view.timeline.items
    assert [(i.type, i.channel) for i in items] == [
        ("emailclick", "Email"),
        ("emailopen", "Email"),
        ("datainput", "Mobile app"),
        ("click", "Mobile app"),
        ("pagevisit", "Mobile app"),
    ]
    assert view.timeline.next_before is None

    [subscription] = view.engagement.subscriptions
    assert (subscription.newsletter, subscription.status) == ("Weekly", "subscribed")
    [issue] = view.engagement.issues
    assert (issue.subject, issue.delivery_status) == ("Spring news", "sent")
    assert (issue.human_opens, issue.machine_opens) == (1, 1)
    assert (issue.human_clicks, issue.machine_clicks) == (1, 0)
    assert issue.first_open_at is not None
    assert view.engagement.totals["human_clicks"] == 1


def test_an_agreement_to_older_texts_is_outdated(client: TestClient, database: Database) -> None:
    world = scenario(client, database)
    factories.consent_text(database, CONSENT, "de", "<p>Kurz</p>", "<p>Lang</p>")
    with database.read() as session:
        [state] = profile.consent_states(session, world.anna_id)
    assert (state.agreed_revision, state.current_revision, state.outdated) == (2, 3, True)


def test_the_timeline_pages_back_by_keyset(client: TestClient, database: Database) -> None:
    world = scenario(client, database)
    track(client, world.setup, world.anna, *({"type": "click", "value": f"c{n}"} for n in range(9)))
    seen: list[int] = []
    before = None
    with database.read() as session:
        while True:
            page = profile.timeline(session, world.anna_id, before=before, limit=4)
            seen += [item.id for item in page.items]
            if page.next_before is None:
                break
            before = page.next_before
    assert len(seen) == 14
    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 14


def test_bad_cursors_and_unknown_contacts(database: Database) -> None:
    for text in ("x", "-1", str(MAX_BIG_ID + 1), "1.5"):
        with pytest.raises(InvalidInput) as caught:
            profile.check_before(text)
        assert (caught.value.code, caught.value.field) == ("invalid_cursor", "before")
    assert profile.check_before("") is None
    assert profile.check_before("42") == 42
    with database.read() as session:
        for guid in ("nope", "06b035b8-6658-4a1b-b1de-5994e4975fb1", "x" * 36):
            with pytest.raises(NotFound) as missing:
                profile.find_contact(session, guid)
            assert missing.value.code == "unknown_contact"
        with pytest.raises(InvalidInput):
            profile.timeline(session, 1, limit=0)
