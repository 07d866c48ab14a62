"""Personalised copies of an issue: links, pixel, footer links, honeypot, placeholders, headers."""

from __future__ import annotations

import uuid
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from contacthub.email.compose import (
    BROWSER_VIEW_PATH,
    CLICK_PATH,
    OPEN_PATH,
    PREFERENCES_PATH,
    UNSUBSCRIBE_PATH,
    IssueTemplate,
    PreparedIssue,
    Recipient,
    RenderedEmail,
    TrackedLink,
    Tracking,
    aggregate_click_url,
    extract_links,
    html_to_text,
    is_trackable,
    list_unsubscribe_headers,
    normalize_base_url,
    personalise_url,
    render_for_recipient,
    signed_params,
    tracking_url,
)
from contacthub.email.hashing import LinkSigner, Purpose

BASE = "https://news.example.com"
ISSUE_GUID = uuid.UUID("1eb1cb43-8820-4eda-866b-140c62ed7f69")
SIGNER = LinkSigner(["test-secret"])
ANN = Recipient("ann+news@example.com", "Ann", "Lee")


class Elements(HTMLParser):
    """The start tags of a document, with their attributes."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def attribute(self, tag: str, name: str) -> list[str]:
        return [a[name] or "" for t, a in self.tags if t == tag and name in a]


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def links_for(html: str) -> list[TrackedLink]:
    return [TrackedLink(uuid.uuid4(), target) for target in extract_links(html)]


def render(
    html: str,
    links: list[TrackedLink] | None = None,
    recipient: Recipient = ANN,
    *,
    subject: str = "News",
    text: str | None = None,
    base_url: str = BASE,
    mailto: str | None = None,
) -> RenderedEmail:
    issue = IssueTemplate(ISSUE_GUID, subject, html, text)
    links = links_for(html) if links is None else links
    return render_for_recipient(
        issue, links, recipient, base_url=base_url, signer=SIGNER, unsubscribe_mailto=mailto
    )


# --- extract_links ----------------------------------------------------------------------------


def test_extract_links_distinct_in_document_order() -> None:
    html = """
    <a href="https://b.example.com/">B</a>
    <p><A HREF="http://a.example.com/x?y=1&amp;z=2#top">A</A></p>
    <a href="https://b.example.com/">B again</a>
    <a href="  https://c.example.com/  ">C</a>
    """
    assert extract_links(html) == [
        "https://b.example.com/",
        "http://a.example.com/x?y=1&z=2#top",
        "https://c.example.com/",
    ]


def test_extract_links_ignores_what_cannot_be_tracked() -> None:
    html = """
    <a href="mailto:help@example.com">mail</a>
    <a href="tel:+441234">call</a>
    <a href="#section">anchor</a>
    <a href="/relative/page">relative</a>
    <a href="//cdn.example.com/x">protocol-relative</a>
    <a href="javascript:alert(1)">js</a>
    <a href="">empty</a>
    <a name="no-href">no href</a>
    <a href="{{ unsubscribe_url }}">unsubscribe</a>
    <a href="https://old.example.com/CMSModules/Newsletters/CMSPages/Redirect.ashx?linkguid=x">
    <a href="https://x.example.com/cmspages/newsletters/getemailbrowsercontent.ashx?issueguid=1">
    <a href="https://news.example.com/contacthub/unsubscribe?issueguid=1">
    <link href="https://fonts.example.com/css">
    <!-- <a href="https://commented.example.com/">hidden in a comment</a> -->
    <a href="https://[::1">broken</a>
    """
    assert extract_links(html) == []


def test_is_trackable() -> None:
    assert is_trackable("https://example.com")
    assert is_trackable("HTTP://EXAMPLE.COM/a")
    assert not is_trackable("ftp://example.com/")
    assert not is_trackable("https:///path-only")
    assert not is_trackable(f"{BASE}{OPEN_PATH}?issueguid=x")


# --- links --------------------------------------------------------------------------------------


def test_tracked_links_point_at_the_click_handler_with_a_valid_hash() -> None:
    html = '<a href="https://shop.example.com/p?id=7&amp;ref=mail#buy" class="btn">Buy</a>'
    links = links_for(html)
    rendered = render(html, links)
    [href] = Elements(rendered.html).attribute("a", "href")[:1]
    assert href.startswith(f"{BASE}{CLICK_PATH}?")
    params = query(href)
    assert list(params) == ["linkguid", "email", "hash"]
    assert params["linkguid"] == str(links[0].guid)
    assert params["email"] == ANN.email  # `+` survives query parsing: it is written as %2B
    assert "%2B" in href
    assert SIGNER.verify(Purpose.CLICK, params["linkguid"], params["email"], params["hash"])
    # The target with its query and fragment is kept by the link, not leaked into the email.
    assert links[0].target_url == "https://shop.example.com/p?id=7&ref=mail#buy"
    assert "shop.example.com" not in rendered.html
    # Other attributes stay.
    assert 'class="btn"' in rendered.html


def test_every_occurrence_of_a_link_gets_its_guid() -> None:
    html = '<a href="https://a.example.com/">1</a><a href="https://a.example.com/">2</a>'
    links = links_for(html)
    hrefs = Elements(render(html, links).html).attribute("a", "href")
    assert [query(h).get("linkguid") for h in hrefs[:2]] == [str(links[0].guid)] * 2


def test_untracked_links_and_markup_are_left_exactly_as_written() -> None:
    body = (
        '<p class=intro>Hello &amp; welcome<br/>\r\n<a href="/relative?a=1&amp;b=2">rel</a> '
        "<a href='mailto:help@example.com'>mail</a> <a href=\"#top\">top</a></p>"
    )
    rendered = render(f"<html><body>{body}</body></html>", [])
    assert rendered.html.startswith(f"<html><body>{body}")


def test_links_not_in_the_issue_links_are_not_rewritten() -> None:
    html = '<a href="https://added-later.example.com/">new</a>'
    assert render(html, []).html.startswith(html)


def test_rewriting_keeps_positions_in_crlf_documents() -> None:
    html = (
        "<html>\r\n<body>\r\n<p>one</p>\r\n"
        '<a href="https://a.example.com/">A</a>\r\n<p>two</p>\r\n'
        '<a href="https://b.example.com/">B</a>\r\n</body>\r\n</html>'
    )
    links = links_for(html)
    rendered = render(html, links)
    hrefs = Elements(rendered.html).attribute("a", "href")
    assert [query(h)["linkguid"] for h in hrefs[:2]] == [str(link.guid) for link in links]
    assert "\r\n<p>one</p>\r\n" in rendered.html
    assert ">A</a>\r\n<p>two</p>\r\n<a " in rendered.html
    assert rendered.html.endswith("</body>\r\n</html>")


def test_personalised_link_target_is_resolved_for_the_redirect() -> None:
    target = "https://shop.example.com/?who={{ email }}&name={{ first_name }}#x"
    html = f'<a href="{target}">shop</a>'
    assert extract_links(html) == [target]
    resolved = personalise_url(target, Recipient("a+b@example.com", "Zoë & Co"))
    assert resolved == "https://shop.example.com/?who=a%2Bb@example.com&name=Zo%C3%AB%20%26%20Co#x"
    assert query(resolved) == {"who": "a+b@example.com", "name": "Zoë & Co"}


# --- pixel, view in browser, unsubscribe ---------------------------------------------------------


def test_open_pixel_just_before_body_end() -> None:
    rendered = render("<html><body><p>Hi</p></body></html>", [])
    before, _, after = rendered.html.rpartition("</body>")
    assert after == "</html>"
    assert before.endswith('width="1" height="1" alt="" style="display:none">')
    [src] = Elements(rendered.html).attribute("img", "src")
    assert src.startswith(f"{BASE}{OPEN_PATH}?")
    params = query(src)
    assert list(params) == ["issueguid", "recipient", "hash"]
    assert params["issueguid"] == str(ISSUE_GUID)
    assert SIGNER.verify(Purpose.OPEN, params["issueguid"], params["recipient"], params["hash"])


def test_open_pixel_at_the_end_without_body() -> None:
    rendered = render("<p>Fragment</p>", [])
    assert rendered.html.startswith("<p>Fragment</p>")
    assert rendered.html.endswith('style="display:none">')


def test_footer_links_when_the_html_has_no_placeholders() -> None:
    rendered = render("<body><p>Hi</p></body>", [])
    hrefs = Elements(rendered.html).attribute("a", "href")
    browser = next(h for h in hrefs if BROWSER_VIEW_PATH in h)
    unsubscribe = next(h for h in hrefs if UNSUBSCRIBE_PATH in h)
    params = query(browser)
    assert list(params) == ["issueguid", "email", "hash"]
    assert SIGNER.verify(Purpose.BROWSER_VIEW, params["issueguid"], params["email"], params["hash"])
    params = query(unsubscribe)
    assert list(params) == ["issueguid", "email", "hash"]
    assert SIGNER.verify(Purpose.UNSUBSCRIBE, params["issueguid"], params["email"], params["hash"])
    assert unsubscribe.startswith(f"{BASE}/contacthub/unsubscribe?")
    assert rendered.html.index("Unsubscribe</a>") < rendered.html.index("</body>")
    preferences = query(next(h for h in hrefs if PREFERENCES_PATH in h))
    assert list(preferences) == ["issueguid", "email", "hash"]
    assert SIGNER.verify(Purpose.PREFERENCES, ISSUE_GUID, ANN.email, preferences["hash"])
    # Each link opens only its own page: the preference link cannot unsubscribe.
    assert not SIGNER.verify(Purpose.UNSUBSCRIBE, ISSUE_GUID, ANN.email, preferences["hash"])


def test_placeholders_place_the_links_and_suppress_the_footer() -> None:
    html = (
        '<body><a href="{{ view_in_browser_url }}">Web version</a>'
        '<p>Bye. <a href="{{unsubscribe_url}}">Leave</a>'
        ' <a href="{{ preferences_url }}">Choose</a></p></body>'
    )
    rendered = render(html, links_for(html))
    hrefs = Elements(rendered.html).attribute("a", "href")
    assert len(hrefs) == 3
    assert BROWSER_VIEW_PATH in hrefs[0]  # inserted as a URL, not percent-encoded
    assert UNSUBSCRIBE_PATH in hrefs[1]
    assert PREFERENCES_PATH in hrefs[2]
    assert "View in browser" not in rendered.html
    assert "Manage subscriptions" not in rendered.html
    assert SIGNER.verify(Purpose.UNSUBSCRIBE, ISSUE_GUID, ANN.email, query(hrefs[1])["hash"])


def test_only_the_missing_footer_link_is_added() -> None:
    rendered = render('<body><a href="{{ unsubscribe_url }}">Leave</a></body>', [])
    assert "View in browser</a>" in rendered.html
    assert "Manage subscriptions</a>" in rendered.html  # every email has the preference link
    assert "Unsubscribe</a>" not in rendered.html


# --- honeypot -----------------------------------------------------------------------------------


def test_hidden_links_become_invisible_honeypots() -> None:
    html = '<body><a href="https://news.example.com/">Home</a></body>'
    visible = TrackedLink(uuid.uuid4(), "https://news.example.com/")
    honeypot = TrackedLink(uuid.uuid4(), "https://news.example.com/", hidden=True)
    rendered = render(html, [visible, honeypot])
    anchors = [(t, a) for t, a in Elements(rendered.html).tags if t == "a"]
    by_guid = {query(a["href"] or "").get("linkguid"): a for _, a in anchors}
    # The visible link keeps its own GUID even though the honeypot has the same target.
    assert query(anchors[0][1]["href"] or "")["linkguid"] == str(visible.guid)
    trap = by_guid[str(honeypot.guid)]
    assert trap["style"] == "display:none"
    assert trap["aria-hidden"] == "true"
    assert trap["tabindex"] == "-1"
    params = query(trap["href"] or "")
    assert SIGNER.verify(Purpose.CLICK, params["linkguid"], params["email"], params["hash"])
    # Nothing a reader could see or click: the anchor is empty.
    assert f'{params["hash"]}" style="display:none" aria-hidden="true" tabindex="-1"></a>' in (
        rendered.html
    )
    assert "linkguid=" + str(honeypot.guid) not in rendered.text


def test_no_honeypot_unless_the_issue_has_one() -> None:
    assert 'display:none" aria-hidden' not in render("<body></body>", []).html


# --- placeholders -------------------------------------------------------------------------------


def test_html_placeholders_are_escaped() -> None:
    villain = Recipient("x@example.com", '<script>alert("1")</script>', "O'Neil & Sons")
    html = '<body><p title="Dear {{ first_name }}">Hi {{first_name}} {{ last_name }}</p></body>'
    rendered = render(html, [], villain)
    assert "<script>" not in rendered.html
    assert "Hi &lt;script&gt;alert(&quot;1&quot;)&lt;/script&gt; O&#x27;Neil &amp; Sons" in (
        rendered.html
    )
    [title] = Elements(rendered.html).attribute("p", "title")
    assert title == 'Dear <script>alert("1")</script>'  # escaped once, read back exactly


def test_url_attributes_are_percent_encoded() -> None:
    html = (
        '<body><a href="mailto:help@example.com?subject=From%20{{ first_name }}">mail</a>'
        '<img src="https://img.example.com/u/{{ email }}.png" alt="{{ first_name }}"></body>'
    )
    rendered = render(html, [], Recipient("a+b@example.com", 'Bo "B" & Co'))
    assert Elements(rendered.html).attribute("a", "href")[0] == (
        "mailto:help@example.com?subject=From%20Bo%20%22B%22%20%26%20Co"
    )
    assert Elements(rendered.html).attribute("img", "src")[0] == (
        "https://img.example.com/u/a%2Bb@example.com.png"
    )
    assert Elements(rendered.html).attribute("img", "alt")[0] == 'Bo "B" & Co'


def test_missing_values_render_empty_or_their_fallback() -> None:
    nameless = Recipient("x@example.com")
    html = '<p>Hi {{ first_name }}!</p><p>Hi {{ first_name | "there" }}!</p>'
    rendered = render(html, [], nameless)
    assert rendered.html.startswith("<p>Hi !</p><p>Hi there!</p>")
    rendered = render(html, [], Recipient("x@example.com", "Ann"))
    assert rendered.html.startswith("<p>Hi Ann!</p><p>Hi Ann!</p>")
    assert render('{{ first_name | "<b>" }}', [], nameless).html.startswith("&lt;b&gt;")


def test_unknown_placeholders_are_left_alone() -> None:
    rendered = render("<p>{{ frist_name }} {{ email }} {{ Email }} { first_name }</p>", [])
    assert rendered.html.startswith(
        "<p>{{ frist_name }} ann+news@example.com {{ Email }} { first_name }</p>"
    )


def test_subject_is_personalised_on_one_line() -> None:
    sneaky = Recipient("x@example.com", "Eve\r\nBcc: victim@example.com")
    rendered = render("<p></p>", [], sneaky, subject="News for {{ first_name }}")
    assert rendered.subject == "News for Eve Bcc: victim@example.com"
    rendered = render("<p></p>", [], ANN, subject="A & B for {{ first_name }} <3")
    assert rendered.subject == "A & B for Ann <3"  # not HTML


def test_plain_text_is_personalised_raw_with_footer() -> None:
    text = "Hi {{ first_name }} & <friends>\nSee https://shop.example.com/\n"
    rendered = render("<p>x</p>", [], subject="s", text=text)
    lines = rendered.text.splitlines()
    assert lines[0] == "Hi Ann & <friends>"
    assert lines[1] == "See https://shop.example.com/"  # free-text URLs are not tracked
    assert any(line.startswith(f"Unsubscribe: {BASE}{UNSUBSCRIBE_PATH}?") for line in lines)
    assert any(line.startswith(f"View in browser: {BASE}{BROWSER_VIEW_PATH}?") for line in lines)
    assert any(
        line.startswith(f"Manage subscriptions: {BASE}{PREFERENCES_PATH}?") for line in lines
    )


def test_plain_text_with_its_own_unsubscribe_gets_no_footer() -> None:
    rendered = render("<p>x</p>", [], text="Bye: {{ unsubscribe_url }}", subject="s")
    assert rendered.text.startswith(f"Bye: {BASE}{UNSUBSCRIBE_PATH}?issueguid=")
    assert "Unsubscribe:" not in rendered.text
    assert "View in browser:" in rendered.text


def test_plain_text_derived_from_html_when_missing() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        '<h1>Hello {{ first_name }}</h1><p>Our <a href="https://shop.example.com/">shop</a>'
        " is open.</p><ul><li>One</li><li>Two</li></ul></body></html>"
    )
    rendered = render(html)
    lines = [line for line in rendered.text.splitlines() if line]
    assert lines[0] == "Hello Ann"
    assert lines[1].startswith(f"Our shop ({BASE}{CLICK_PATH}?linkguid=")
    assert lines[1].endswith(") is open.")
    assert "- One\n- Two\n" in rendered.text
    assert "color:red" not in rendered.text
    assert f"Unsubscribe: {BASE}{UNSUBSCRIBE_PATH}?issueguid=" in rendered.text
    assert f"View in browser: {BASE}{BROWSER_VIEW_PATH}?issueguid=" in rendered.text


def test_derived_text_shows_the_unsubscribe_link_the_html_places() -> None:
    html = '<body><p>Leave <a href="{{ unsubscribe_url }}">here</a>.</p></body>'
    text = render(html, []).text
    assert text.startswith(f"Leave here ({BASE}{UNSUBSCRIBE_PATH}?issueguid=")
    assert "Unsubscribe:" not in text
    assert "View in browser:" in text


def test_derived_text_is_personalised_per_recipient_and_ignores_nul() -> None:
    html = (
        '<body><p>Hi {{ first_name }}\0 <a href="https://a.example.com/">\x000\x00</a></p></body>'
    )
    links = links_for(html)
    issue = IssueTemplate(ISSUE_GUID, "s", html)
    prepared = PreparedIssue(issue, links, BASE)
    bob = prepared.render(Recipient("bob@example.com", "Bob"), SIGNER).text
    cat = prepared.render(Recipient("cat@example.com", "Cat"), SIGNER).text
    assert bob.startswith(f"Hi Bob 0 ({BASE}{CLICK_PATH}?linkguid={links[0].guid}&email=bob@")
    assert cat.startswith(f"Hi Cat 0 ({BASE}{CLICK_PATH}?linkguid={links[0].guid}&email=cat@")
    assert "\0" not in bob


def test_html_to_text_collapses_whitespace() -> None:
    assert html_to_text("<p>  a \n  b </p>\n\n\n<p>c</p><br><div>d</div>") == "a b\n\nc\n\nd\n"


# --- headers ------------------------------------------------------------------------------------


def test_list_unsubscribe_headers() -> None:
    rendered = render("<p></p>", [], mailto="leave@example.com")
    unsubscribe = tracking_url(BASE, Purpose.UNSUBSCRIBE, ISSUE_GUID, ANN.email, SIGNER)
    assert rendered.headers == {
        "List-Unsubscribe": f"<{unsubscribe}>, <mailto:leave@example.com?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_one_click_only_over_https() -> None:
    headers = list_unsubscribe_headers("http://localhost:8000/contacthub/unsubscribe?x=1")
    assert headers == {"List-Unsubscribe": "<http://localhost:8000/contacthub/unsubscribe?x=1>"}


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://news.example.com/", "https://news.example.com"),
        (" https://news.example.com ", "https://news.example.com"),
        ("http://localhost:8000/hub/", "http://localhost:8000/hub"),
    ],
)
def test_base_url_normalised(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "news.example.com", "ftp://news.example.com", "https://x.com/?a=1", "https://"]
)
def test_bad_base_url_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        normalize_base_url(bad)


def test_base_url_with_a_path_prefix() -> None:
    url = tracking_url("https://example.com/news/", Purpose.OPEN, ISSUE_GUID, "a@b.c", SIGNER)
    assert url.startswith(f"https://example.com/news{OPEN_PATH}?issueguid=")


def test_signed_params_match_the_urls() -> None:
    params = signed_params(Purpose.CLICK, ISSUE_GUID, "a@example.com", SIGNER)
    url = tracking_url(BASE, Purpose.CLICK, ISSUE_GUID, "a@example.com", SIGNER)
    assert query(url) == params


# --- rendering as a whole -----------------------------------------------------------------------


def test_rendering_is_deterministic_so_the_browser_view_matches() -> None:
    html = '<body><a href="https://a.example.com/">A</a>{{ first_name }}</body>'
    links = links_for(html)
    assert render(html, links) == render(html, links)


def test_prepared_issue_renders_each_recipient() -> None:
    html = '<body><a href="https://a.example.com/?u={{ email }}">A</a>Hi {{ first_name }}</body>'
    links = links_for(html)
    issue = IssueTemplate(ISSUE_GUID, "Hi {{ first_name }}", html)
    prepared = PreparedIssue(issue, links, BASE)
    bob = prepared.render(Recipient("bob@example.com", "Bob"), SIGNER)
    cat = prepared.render(Recipient("cat@example.com", "Cat"), SIGNER)
    assert (bob.subject, cat.subject) == ("Hi Bob", "Hi Cat")
    assert "Hi Bob" in bob.html
    assert "Hi Cat" in cat.html
    assert "email=bob@example.com" in bob.html
    assert "bob@" not in cat.html
    assert bob == render_for_recipient(
        issue, links, Recipient("bob@example.com", "Bob"), base_url=BASE, signer=SIGNER
    )


# --- tracking modes -----------------------------------------------------------------------------

MODES_HTML = (
    "<html><body>"
    '<a href="https://shop.example.com/p?id=7&amp;ref=mail">Buy</a>'
    '<a href="https://shop.example.com/me?who={{ email }}">Mine</a>'
    "</body></html>"
)


def render_mode(tracking: Tracking) -> tuple[RenderedEmail, list[TrackedLink]]:
    visible = links_for(MODES_HTML)
    honeypot = TrackedLink(uuid.uuid4(), "https://shop.example.com/", hidden=True)
    links = [*visible, honeypot]
    issue = IssueTemplate(ISSUE_GUID, "News", MODES_HTML, None)
    rendered = PreparedIssue(issue, links, BASE).render(ANN, SIGNER, tracking)
    return rendered, links


def test_personal_is_the_default_mode() -> None:
    issue = IssueTemplate(ISSUE_GUID, "News", MODES_HTML, None)
    prepared = PreparedIssue(issue, links_for(MODES_HTML), BASE)
    assert prepared.render(ANN, SIGNER) == prepared.render(ANN, SIGNER, Tracking.PERSONAL)
    assert OPEN_PATH in prepared.render(ANN, SIGNER).html


def test_aggregate_copies_have_no_pixel_and_count_links_without_the_address() -> None:
    rendered, links = render_mode(Tracking.AGGREGATE)
    plain, personal, honeypot = links
    assert OPEN_PATH not in rendered.html
    assert "<img" not in rendered.html
    hrefs = Elements(rendered.html).attribute("a", "href")
    # The plain link goes through the click handler with its GUID alone: no address, no hash.
    assert hrefs[0] == f"{BASE}{CLICK_PATH}?linkguid={plain.guid}"
    assert hrefs[0] == aggregate_click_url(BASE, plain.guid)
    # A target naming the reader cannot be counted without naming them: it goes straight there.
    assert hrefs[1] == "https://shop.example.com/me?who=ann%2Bnews@example.com"
    # The honeypot stays, aggregate too, so that scanners are still recognised.
    assert f"{BASE}{CLICK_PATH}?linkguid={honeypot.guid}" in hrefs
    # Nothing in the tracked URLs names the reader; view in browser and unsubscribe still do.
    for href in hrefs:
        if CLICK_PATH in href:
            assert set(query(href)) == {"linkguid"}
    assert any(UNSUBSCRIBE_PATH in href for href in hrefs)
    assert "List-Unsubscribe" in rendered.headers
    # The derived text shows the same aggregate link.
    assert f"{BASE}{CLICK_PATH}?linkguid={plain.guid}" in rendered.text
    assert "email=" not in rendered.text.split("--")[0]
    assert personal.target_url not in rendered.html


def test_untracked_copies_link_straight_to_the_targets() -> None:
    rendered, links = render_mode(Tracking.NONE)
    hrefs = Elements(rendered.html).attribute("a", "href")
    assert hrefs[:2] == [
        "https://shop.example.com/p?id=7&ref=mail",
        "https://shop.example.com/me?who=ann%2Bnews@example.com",
    ]
    assert CLICK_PATH not in rendered.html
    assert OPEN_PATH not in rendered.html
    assert str(links[2].guid) not in rendered.html  # no honeypot
    assert "https://shop.example.com/p?id=7&ref=mail" in rendered.text
    assert UNSUBSCRIBE_PATH in rendered.html  # the reader can still leave
