"""Building each recipient's personalised copy of an email issue.

Personalisation placeholders, in the subject, the HTML, the plain text and link targets:

    {{ first_name }}   {{ last_name }}   {{ email }}
    {{ first_name | "there" }}           a fallback, used when the value is missing or empty
    {{ unsubscribe_url }}   {{ view_in_browser_url }}   {{ preferences_url }}

Spaces inside the braces are optional; names are lower case. A value is escaped for where it
lands: HTML-escaped in HTML text and attributes, percent-encoded in URL attributes (`href`,
`src`, `background`) and in tracked link targets, control characters turned into spaces in the
subject, as is in the plain text. The two URL placeholders are inserted as URLs (never
percent-encoded). A missing value renders empty (or its fallback). Unknown placeholders are left
as they are, so that a typo shows in a test send instead of vanishing silently.

Every recipient's copy gets:
- each `<a href>` whose target is one of the issue's links rewritten to the click handler,
  `{base}/CMSModules/Newsletters/CMSPages/Redirect.ashx?linkguid=…&email=…&hash=…`; the handler
  redirects to the link's target with placeholders resolved (`personalise_url`);
- the open pixel `{base}/CMSModules/Newsletters/CMSPages/Track.ashx?issueguid=…&recipient=…&hash=…`
  just before `</body>` (or at the end);
- the view-in-browser link `{base}/CMSPages/Newsletters/GetEmailBrowserContent.ashx?issueguid=…`
  `&email=…&hash=…` and the unsubscribe link `{base}/contacthub/unsubscribe?issueguid=…&email=…`
  `&hash=…` and the preference page `{base}/contacthub/preferences?issueguid=…&email=…&hash=…`
  (subscriptions/preferences.py): where the HTML uses their placeholders, there; otherwise in
  a small footer added before `</body>`;
- the honeypot: each of the issue's links flagged `hidden` is added as an empty, invisible
  anchor (`display:none`, hidden from screen readers) that only a machine follows;
- `List-Unsubscribe` (RFC 2369, with an optional mailto) and, when the unsubscribe URL is HTTPS,
  `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058 requires HTTPS).

The addresses in links are the recipient's address as given, percent-encoded (`+` as `%2B`, so
that query parsing cannot turn it into a space); the hashes bind the normalised address
(`hashing.normalize_email`). The view-in-browser handler renders the same way, so the browser
shows the email as the recipient received it.

Plain text: an author's plain-text part is personalised, and its URLs are not tracked (URLs in
free text have no reliable boundaries). Without one, the text is derived from the HTML (once per
issue, not per recipient), showing each link's tracked URL after its text. Either way, lines for
view in browser and unsubscribe are appended unless the text already uses their placeholders.

Links inside HTML comments (Outlook's conditional `<!--[if mso]>` buttons) are not seen by the
HTML parser and stay untracked.

How much a copy tracks is its `Tracking` mode. All of the above is `Tracking.PERSONAL`.
`Tracking.AGGREGATE` (consent-gated newsletters, for subscribers who did not agree to tracking)
has no open pixel, and each tracked link points at the click handler with its link GUID alone,
`{base}/CMSModules/Newsletters/CMSPages/Redirect.ashx?linkguid=…`: the handler counts the click
for the link, for nobody in particular, and redirects to the link's stored target. A link whose
target uses a recipient placeholder (`{{ email }}`, `{{ first_name }}`, …) cannot go through the
handler without naming the person, so in an aggregate copy it goes straight to its personalised
target and is not counted. `Tracking.NONE` (test sends) has no pixel and every link goes
straight to its target. In all modes the view-in-browser and unsubscribe links stay signed:
they are how the reader reaches their copy and leaves, not tracking, and log nothing.
"""

from __future__ import annotations

import enum
import html as html_lib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TypeAlias
from urllib.parse import quote, urlsplit

from contacthub.email.hashing import LinkSigner, Purpose, canonical_guid

CLICK_PATH = "/CMSModules/Newsletters/CMSPages/Redirect.ashx"
OPEN_PATH = "/CMSModules/Newsletters/CMSPages/Track.ashx"
BROWSER_VIEW_PATH = "/CMSPages/Newsletters/GetEmailBrowserContent.ashx"
UNSUBSCRIBE_PATH = "/contacthub/unsubscribe"
PREFERENCES_PATH = "/contacthub/preferences"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a signed link points and how it names its parameters.

    `email_params[0]` is the name written into emails; handlers also accept the others (the
    vendor's handlers read `email` on the pixel and `recipientEmail` on view in browser).
    Parameter names are matched case-insensitively by the handlers.
    """

    path: str
    guid_param: str
    email_params: tuple[str, ...]


ROUTES: Mapping[Purpose, Route] = {
    Purpose.OPEN: Route(OPEN_PATH, "issueguid", ("recipient", "email")),
    Purpose.CLICK: Route(CLICK_PATH, "linkguid", ("email",)),
    Purpose.BROWSER_VIEW: Route(BROWSER_VIEW_PATH, "issueguid", ("email", "recipientemail")),
    Purpose.UNSUBSCRIBE: Route(UNSUBSCRIBE_PATH, "issueguid", ("email",)),
    Purpose.PREFERENCES: Route(PREFERENCES_PATH, "issueguid", ("email",)),
}

_TRACKING_PATHS = tuple(route.path.lower() for route in ROUTES.values())
_URL_ATTRIBUTES = frozenset({"href", "src", "background"})
_PLACEHOLDER = re.compile(r'\{\{\s*([a-z_]+)\s*(?:\|\s*"([^"]*)"\s*)?\}\}')
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")

RECIPIENT_FIELDS = ("first_name", "last_name", "email")


class Tracking(enum.Enum):
    """How much a copy tracks its reader (see the module's docstring)."""

    PERSONAL = "personal"  # open pixel, and links signed for this reader
    AGGREGATE = "aggregate"  # no pixel; links counted per link, for nobody in particular
    NONE = "none"  # no pixel; links go straight to their targets


UNSUBSCRIBE_URL = "unsubscribe_url"
VIEW_IN_BROWSER_URL = "view_in_browser_url"
PREFERENCES_URL = "preferences_url"


@dataclass(frozen=True, slots=True)
class TrackedLink:
    """One link of an issue. `hidden`: the honeypot, a link no human can see."""

    guid: uuid.UUID
    target_url: str
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom a copy is for."""

    email: str
    first_name: str | None = None
    last_name: str | None = None


@dataclass(frozen=True, slots=True)
class IssueTemplate:
    """An issue as written, placeholders unresolved."""

    guid: uuid.UUID
    subject: str
    html: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One recipient's copy: what `sender.build_message` turns into a message."""

    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)


# --- URLs -----------------------------------------------------------------------------------


def normalize_base_url(base_url: str) -> str:
    """The newsletter's public base URL without a trailing slash; ValueError if not http(s)."""
    base = base_url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL must be an absolute http(s) URL: {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base URL cannot have a query or fragment: {base_url!r}")
    return base


def signed_params(
    purpose: Purpose, guid: uuid.UUID | str, email: str, signer: LinkSigner
) -> dict[str, str]:
    """The query parameters of a signed link, in the order they are written."""
    route = ROUTES[purpose]
    return {
        route.guid_param: canonical_guid(guid),
        route.email_params[0]: email,
        "hash": signer.sign(purpose, guid, email),
    }


def tracking_url(
    base_url: str, purpose: Purpose, guid: uuid.UUID | str, email: str, signer: LinkSigner
) -> str:
    """The signed URL of a tracking handler (or the unsubscribe page) for one recipient."""
    return _signed_url(normalize_base_url(base_url), purpose, guid, email, signer)


def _signed_url(
    base: str, purpose: Purpose, guid: uuid.UUID | str, email: str, signer: LinkSigner
) -> str:
    # What urlencode(signed_params(...), quote_via=quote, safe="@") writes, without its cost:
    # sending renders every link of every recipient.
    route = ROUTES[purpose]
    guid_text = canonical_guid(guid)
    return (
        f"{base}{route.path}?{route.guid_param}={guid_text}"
        f"&{route.email_params[0]}={quote(email, safe='@')}"
        f"&hash={signer.sign(purpose, guid, email)}"
    )


def aggregate_click_url(base: str, link_guid: uuid.UUID | str) -> str:
    """The click handler's URL for a link counted in aggregate: the link GUID, nobody's address.

    The handler redirects to the link's stored target, never to a URL from the request.
    """
    return f"{base}{CLICK_PATH}?{ROUTES[Purpose.CLICK].guid_param}={canonical_guid(link_guid)}"


def is_trackable(url: str) -> bool:
    """True for an absolute http(s) URL that is not already one of the tracking handlers."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return False
    return not parts.path.lower().endswith(_TRACKING_PATHS)


# --- Placeholders ---------------------------------------------------------------------------


def _values(recipient: Recipient) -> dict[str, str | None]:
    return {
        "first_name": recipient.first_name,
        "last_name": recipient.last_name,
        "email": recipient.email,
    }


def _substitute(
    template: str,
    values: Mapping[str, str | None],
    escape: Callable[[str], str],
    urls: Mapping[str, str] | None = None,
) -> str:
    """Resolve placeholders: `values` escaped with `escape`, `urls` inserted as given."""
    if "{{" not in template:  # the common case: nothing to do
        return template

    def replace(match: re.Match[str]) -> str:
        name, fallback = match.group(1), match.group(2)
        if urls is not None and name in urls:
            return urls[name]
        if name not in values:
            return match.group(0)
        return escape(values[name] or fallback or "")

    return _PLACEHOLDER.sub(replace, template)


def _escape_html(value: str) -> str:
    return html_lib.escape(value, quote=True)


def _escape_url(value: str) -> str:
    return quote(value, safe="@")


def _escape_header(value: str) -> str:
    # A name with a line break must not start a new header (or fail the whole message).
    return _CONTROL_CHARACTERS.sub(" ", value)


def _no_escape(value: str) -> str:
    return value


def _placeholder_names(template: str) -> set[str]:
    return {match.group(1) for match in _PLACEHOLDER.finditer(template)}


def personalise_url(target_url: str, recipient: Recipient) -> str:
    """A tracked link's target with the recipient's placeholders resolved, percent-encoded."""
    return _substitute(target_url, _values(recipient), _escape_url)


# --- HTML scanning --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StartTag:
    offset: int
    raw: str
    name: str
    attrs: tuple[tuple[str, str | None], ...]
    self_closing: bool


class _Scanner(HTMLParser):
    """Records every start tag with its offset in the source, and where `</body>` is."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._line_starts = [0] + [match.end() for match in re.finditer("\n", source)]
        self.tags: list[_StartTag] = []
        self.body_end: int | None = None
        self.feed(source)
        self.close()

    def _offset(self) -> int:
        # HTMLParser counts lines by "\n" alone, as the table above does.
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _record(self, tag: str, attrs: list[tuple[str, str | None]], self_closing: bool) -> None:
        raw = self.get_starttag_text() or ""
        self.tags.append(_StartTag(self._offset(), raw, tag, tuple(attrs), self_closing))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs, self_closing=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs, self_closing=True)

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def _href(tag: _StartTag) -> str | None:
    return next((value for name, value in tag.attrs if name == "href" and value), None)


def extract_links(html: str) -> list[str]:
    """The distinct http(s) targets of the `<a href>`s, in document order.

    mailto:, tel:, `#anchors`, relative links and links already pointing at a tracking handler
    are left out. Targets are as written (entities decoded, surrounding spaces stripped),
    placeholders unresolved: that is what `TrackedLink.target_url` holds.
    """
    links: dict[str, None] = {}
    for tag in _Scanner(html).tags:
        href = _href(tag) if tag.name == "a" else None
        if href is not None and is_trackable(href):
            links.setdefault(href.strip(), None)
    return list(links)


# --- Rendering ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tag:
    """A start tag rebuilt per recipient: a tracked link, or placeholders in a URL attribute."""

    name: str
    attrs: tuple[tuple[str, str | None], ...]
    self_closing: bool
    link_guid: uuid.UUID | None


class _Slot:
    """Where the footer, honeypot and pixel go: before `</body>`, else at the end."""


_SLOT = _Slot()
_Segment: TypeAlias = str | _Tag | _Slot


class PreparedIssue:
    """An issue parsed once, rendered for many recipients (sending parses the HTML once)."""

    def __init__(
        self,
        issue: IssueTemplate,
        links: Sequence[TrackedLink],
        base_url: str,
        *,
        unsubscribe_mailto: str | None = None,
    ) -> None:
        """`links`: all the issue's links, hidden ones included; `base_url`: the newsletter's."""
        self.issue = issue
        self.base_url = normalize_base_url(base_url)
        self.unsubscribe_mailto = unsubscribe_mailto
        self._honeypots = tuple(link.guid for link in links if link.hidden)
        tracked = {link.target_url: link.guid for link in links if not link.hidden}
        self._targets = {guid: target for target, guid in tracked.items()}
        # Targets naming the reader cannot be counted in aggregate without naming them.
        self._personal_targets = frozenset(
            guid
            for target, guid in tracked.items()
            if _placeholder_names(target) & set(RECIPIENT_FIELDS)
        )
        self._segments = self._compile(issue.html, tracked)
        used = _placeholder_names(issue.html)
        self._footer_unsubscribe = UNSUBSCRIBE_URL not in used
        self._footer_browser_view = VIEW_IN_BROWSER_URL not in used
        self._footer_preferences = PREFERENCES_URL not in used
        self._text = self._compile_text(issue, tracked)

    @staticmethod
    def _compile(source: str, tracked: Mapping[str, uuid.UUID]) -> list[_Segment]:
        scanner = _Scanner(source)
        slot_at = scanner.body_end if scanner.body_end is not None else len(source)
        segments: list[_Segment] = []
        cursor = 0
        slot_placed = False

        def literal_until(offset: int) -> None:
            nonlocal cursor, slot_placed
            if not slot_placed and cursor <= slot_at <= offset:
                segments.extend((source[cursor:slot_at], _SLOT))
                cursor, slot_placed = slot_at, True
            segments.append(source[cursor:offset])
            cursor = offset

        for tag in scanner.tags:
            href = _href(tag) if tag.name == "a" else None
            guid = tracked.get(href.strip()) if href is not None else None
            templated = any(
                name in _URL_ATTRIBUTES and value is not None and "{{" in value
                for name, value in tag.attrs
            )
            if guid is None and not templated:
                continue
            literal_until(tag.offset)
            segments.append(_Tag(tag.name, tag.attrs, tag.self_closing, guid))
            cursor = tag.offset + len(tag.raw)
        literal_until(len(source))
        return [segment for segment in segments if segment != ""]

    @staticmethod
    def _compile_text(
        issue: IssueTemplate, tracked: Mapping[str, uuid.UUID]
    ) -> list[str | uuid.UUID]:
        """The plain text as pieces: text (placeholders unresolved) and tracked link GUIDs."""
        if issue.text is not None:
            text = issue.text
            used = _placeholder_names(text)
        else:
            # Derived from the HTML once per issue, not per recipient: parsing is the slow part.
            guids: list[uuid.UUID] = []

            def link_text(href: str) -> str | None:
                guid = tracked.get(href.strip())
                if guid is not None:
                    guids.append(guid)
                    return f"{_TEXT_MARK}{len(guids) - 1}{_TEXT_MARK}"
                if _PLACEHOLDER.fullmatch(href.strip()) or is_trackable(href):
                    return href.strip()
                return None

            text = html_to_text(issue.html, link_text)
            used = _placeholder_names(text)
        footer = [
            f"{label}: {{{{ {name} }}}}"
            for name, label in (
                (VIEW_IN_BROWSER_URL, "View in browser"),
                (PREFERENCES_URL, "Manage subscriptions"),
                (UNSUBSCRIBE_URL, "Unsubscribe"),
            )
            if name not in used
        ]
        if footer:
            text = text.rstrip("\n") + "\n\n--\n" + "\n".join(footer) + "\n"
        if issue.text is not None:
            return [text]
        pieces = _TEXT_MARK_PATTERN.split(text)
        # split() puts the captured link numbers at the odd positions.
        return [guids[int(piece)] if i % 2 else piece for i, piece in enumerate(pieces)]

    def render(
        self, recipient: Recipient, signer: LinkSigner, tracking: Tracking = Tracking.PERSONAL
    ) -> RenderedEmail:
        """This recipient's copy: subject, HTML, plain text and list headers."""
        email = recipient.email
        values = _values(recipient)

        signed: dict[tuple[Purpose, uuid.UUID], str] = {}

        def signed_url(purpose: Purpose, guid: uuid.UUID) -> str:
            # Links appear in the HTML and in the text, often more than once: sign each once.
            key = (purpose, guid)
            if key not in signed:
                signed[key] = _signed_url(self.base_url, purpose, guid, email, signer)
            return signed[key]

        def click_url(guid: uuid.UUID) -> str:
            if tracking is Tracking.PERSONAL:
                return signed_url(Purpose.CLICK, guid)
            if tracking is Tracking.AGGREGATE and guid not in self._personal_targets:
                return aggregate_click_url(self.base_url, guid)
            return personalise_url(self._targets[guid], recipient)

        def url(purpose: Purpose, guid: uuid.UUID) -> str:
            return click_url(guid) if purpose is Purpose.CLICK else signed_url(purpose, guid)

        urls = {
            UNSUBSCRIBE_URL: url(Purpose.UNSUBSCRIBE, self.issue.guid),
            VIEW_IN_BROWSER_URL: url(Purpose.BROWSER_VIEW, self.issue.guid),
            PREFERENCES_URL: url(Purpose.PREFERENCES, self.issue.guid),
        }
        html_urls = {name: _escape_html(value) for name, value in urls.items()}

        parts: list[str] = []
        for segment in self._segments:
            if isinstance(segment, str):
                parts.append(_substitute(segment, values, _escape_html, html_urls))
            elif isinstance(segment, _Tag):
                guid = segment.link_guid
                click = url(Purpose.CLICK, guid) if guid is not None else None
                parts.append(_render_tag(segment, values, urls, click))
            else:
                parts.append(self._slot(urls, url, tracking))
        html = "".join(parts)

        text = "".join(
            url(Purpose.CLICK, piece)
            if isinstance(piece, uuid.UUID)
            else _substitute(piece, values, _no_escape, urls)
            for piece in self._text
        )

        return RenderedEmail(
            subject=_substitute(self.issue.subject, values, _escape_header, urls),
            html=html,
            text=text,
            headers=list_unsubscribe_headers(urls[UNSUBSCRIBE_URL], self.unsubscribe_mailto),
        )

    def _slot(
        self,
        urls: Mapping[str, str],
        url: Callable[[Purpose, uuid.UUID], str],
        tracking: Tracking,
    ) -> str:
        footer_links = []
        if self._footer_browser_view:
            footer_links.append(
                f'<a href="{_escape_html(urls[VIEW_IN_BROWSER_URL])}">View in browser</a>'
            )
        if self._footer_preferences:
            footer_links.append(
                f'<a href="{_escape_html(urls[PREFERENCES_URL])}">Manage subscriptions</a>'
            )
        if self._footer_unsubscribe:
            footer_links.append(f'<a href="{_escape_html(urls[UNSUBSCRIBE_URL])}">Unsubscribe</a>')
        parts = []
        if footer_links:
            parts.append(
                '<p style="font-size:12px;color:#666666;text-align:center">'
                + " | ".join(footer_links)
                + "</p>"
            )
        if tracking is Tracking.NONE:
            return "".join(parts)  # a honeypot only matters where clicks are counted
        for guid in self._honeypots:
            parts.append(
                f'<a href="{_escape_html(url(Purpose.CLICK, guid))}" style="display:none" '
                'aria-hidden="true" tabindex="-1"></a>'
            )
        if tracking is Tracking.PERSONAL:
            parts.append(
                f'<img src="{_escape_html(url(Purpose.OPEN, self.issue.guid))}" width="1" '
                'height="1" alt="" style="display:none">'
            )
        return "".join(parts)


def _render_tag(
    tag: _Tag, values: Mapping[str, str | None], urls: Mapping[str, str], click: str | None
) -> str:
    parts = [f"<{tag.name}"]
    for name, value in tag.attrs:
        if value is None:
            parts.append(f" {name}")
            continue
        if click is not None and name == "href":
            value = click
        elif name in _URL_ATTRIBUTES:
            value = _substitute(value, values, _escape_url, urls)
        else:
            # Attribute values come unescaped from the parser: resolve, then escape once.
            value = _substitute(value, values, _no_escape, urls)
        parts.append(f' {name}="{_escape_html(value)}"')
    parts.append(" />" if tag.self_closing else ">")
    return "".join(parts)


def list_unsubscribe_headers(unsubscribe_url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 2369 `List-Unsubscribe`, plus RFC 8058 one-click when the URL is HTTPS."""
    targets = [f"<{unsubscribe_url}>"]
    if mailto:
        targets.append(f"<mailto:{quote(mailto.strip(), safe='@')}?subject=unsubscribe>")
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if urlsplit(unsubscribe_url).scheme.lower() == "https":
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def render_for_recipient(
    issue: IssueTemplate,
    links: Sequence[TrackedLink],
    recipient: Recipient,
    *,
    base_url: str,
    signer: LinkSigner,
    unsubscribe_mailto: str | None = None,
    tracking: Tracking = Tracking.PERSONAL,
) -> RenderedEmail:
    """One recipient's copy of an issue (also what view in browser shows).

    To render many recipients, build a `PreparedIssue` once and call its `render`.
    """
    prepared = PreparedIssue(issue, links, base_url, unsubscribe_mailto=unsubscribe_mailto)
    return prepared.render(recipient, signer, tracking)


# --- Plain text from HTML -------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "tr", "li", "ul", "ol", "table", "blockquote", "hr", "section"}
    | {f"h{level}" for level in range(1, 7)}
)
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title"})


# Marks a tracked link's place in the derived text; NUL never survives into the text itself.
_TEXT_MARK = "\0"
_TEXT_MARK_PATTERN = re.compile(r"\0(\d+)\0")


def _http_link(href: str) -> str | None:
    return href.strip() if is_trackable(href) else None


class _TextWriter(HTMLParser):
    def __init__(self, link_text: Callable[[str], str | None]) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._link_text = link_text
        self._skipping = 0
        self._anchors: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n- " if tag == "li" else "\n")
        elif tag == "a":
            href = next((value for name, value in attrs if name == "href"), None)
            self._anchors.append((href, len(self.chunks)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS and tag != "li":  # the next item starts its own line
            self.chunks.append("\n")
        elif tag == "a" and self._anchors:
            href, start = self._anchors.pop()
            label = "".join(self.chunks[start:]).strip()
            shown = self._link_text(href.replace("\0", "")) if href else None
            # An empty anchor (the honeypot) shows nothing; a bare URL is not shown twice.
            if shown and label and label != href:
                self.chunks.append(f" ({shown})")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(re.sub(r"\s+", " ", data.replace("\0", "")))


def html_to_text(html: str, link_text: Callable[[str], str | None] = _http_link) -> str:
    """A readable plain-text version of an HTML email: text, line breaks, and link URLs.

    `link_text` says what to show, in parentheses after a link's text, for its href (None:
    nothing); by default the URL of http(s) links.
    """
    writer = _TextWriter(link_text)
    writer.feed(html)
    writer.close()
    lines = (line.strip() for line in "".join(writer.chunks).split("\n"))
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
