"""The demo's people and what they do, generated from one seeded random generator.

Nothing here touches the database: `DemoGenerator` plans contacts, subscribers, consent
agreements, email engagement and the activity stream as plain values, and `service` stores them.
The same seed and the same end time (`until`) give the same data, row for row.

The model, kept simple but shaped like real traffic:
- Time runs in hours from `until - days` to `until`. Each hour's traffic is a weight: a daily
  rhythm (quiet nights, a morning and an evening peak, in UTC), a weekly one (quieter weekends),
  growth over the period (the hub's audience grows), and a bump for two days after each
  newsletter goes out. Contacts and activities are shared out over the hours by these weights.
- A contact is created by its first visit: its first session starts when it is created.
  Identified contacts (about 60 %) send a form in that session (a `datainput`), which is where
  their name and email came from. Later sessions go to contacts created earlier, picked with a
  heavy-tailed (Pareto) engagement weight: most come back rarely, a few very often.
- A session is a landing page (with a referrer: search, social, direct ...), then page visits,
  clicks on elements, now and then a form or a custom activity, seconds to minutes apart, on the
  contact's usual channel. Pages and clicked elements follow a power law (Zipf).
- Email: subscribers are identified contacts who signed up; each sent issue goes to everyone
  subscribed by then. Opens and clicks come from the recipient's mail set-up: Apple Mail's
  privacy proxy fetches the pixel soon after delivery, Gmail's image proxy fetches it when the
  email is read, corporate gateways follow every link within seconds. Each hit is labelled by
  the hub's own `machine.classify`, so human and machine figures are what the hub would record.
  Human hits are also `emailopen` (first open) and `emailclick` activities, as tracking does.

Activities are produced hour by hour, each hour sorted by time, so that inserting them in that
order gives ids that follow time, which the activity log and the rollups rely on.
"""

from __future__ import annotations

import math
import random
import unicodedata
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from operator import itemgetter
from typing import Generic, TypeVar

from contacthub.activities.rules import (
    CLICK,
    DATA_INPUT,
    EMAIL_CLICK,
    EMAIL_OPEN,
    MAX_TITLE_LENGTH,
    MAX_VALUE_LENGTH,
    PAGE_VISIT,
)
from contacthub.demo import words
from contacthub.email.machine import HitKind, Verdict, classify

HOUR = 3600.0
DAY = 86_400.0

# Channels, by index; the service maps them to the ids it creates.
WEBSITE, MOBILE_APP, SHOP_SPA, SUPPORT = range(4)
CHANNEL_NAMES = ("Website", "Mobile app", "Shop SPA", "Support service")
CHANNEL_SHARES = (52, 20, 22, 6)
NO_CHANNEL = -1  # email activities
T = TypeVar("T")

VIDEO_TYPE = "custom_video_played"
VIDEO_NAME = "Video played"
CATALOG_TYPE = "custom_catalog_download"
CATALOG_NAME = "Catalog downloaded"
# The catalog download type was disabled this far into the period: its activities stop there.
CATALOG_DISABLED_AT = 0.6

IDENTIFIED_SHARE = 0.6
SUBSCRIBERS = 5_000
# Newsletter issues go out this far into the period (the service makes a third one, a draft).
ISSUE_SENDS = (0.38, 0.78)
ISSUE_OPEN_RATES = (0.38, 0.43)
CLICK_GIVEN_OPEN = 0.22
UNSUBSCRIBE_GIVEN_OPEN = 0.012
FAILED_DELIVERY = 0.006
SENDING_RATE = 40.0  # messages per second
# The newsletter consent's texts changed this far into the period (a new revision).
NEWSLETTER_REVISION_AT = 0.5

# UTC hour of the day and day of the week (Monday first) -> relative traffic.
HOURLY = (
    0.25, 0.18, 0.14, 0.12, 0.13, 0.2, 0.35, 0.6, 0.85, 1.0, 1.05, 1.05,
    1.0, 0.95, 0.95, 0.95, 0.97, 1.02, 1.1, 1.2, 1.25, 1.1, 0.8, 0.45,
)  # fmt: skip
WEEKDAY = (1.0, 1.02, 1.0, 0.97, 0.9, 0.72, 0.8)

# Mail set-ups of subscribers: Apple Mail (privacy proxy), Gmail (image proxy), a company's
# Outlook behind a link-scanning gateway, anything else.
APPLE, GMAIL, CORPORATE, OTHER = range(4)
MAIL_SETUPS = (30, 33, 20, 17)
SCANNED_CORPORATE = 0.6

ActivityTuple = tuple[float, int, int, str, str, str | None, str | None, str | None]
"""(time, contact index, channel index, type, title, value, url, referrer)."""


@dataclass(frozen=True, slots=True)
class DemoSize:
    """What to generate: how much, over which days, from which seed."""

    contacts: int
    activities: int
    days: int
    seed: int
    until: datetime


@dataclass(slots=True)
class PlannedContact:
    """One contact to insert; `created` is a POSIX time."""

    guid: uuid.UUID
    created: float
    channel: int
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    birthday: date | None = None
    mobile_phone: str | None = None
    company_name: str | None = None
    job_title: str | None = None
    address1: str | None = None
    city: str | None = None
    zip: str | None = None
    country: str | None = None
    state: str | None = None
    notes: str | None = None
    form: str | None = None  # the form its first session sends, for identified contacts


@dataclass(slots=True)
class PlannedSubscriber:
    """A newsletter subscriber: a contact (by index) who signed up at `created`."""

    contact: int
    email: str
    first_name: str | None
    last_name: str | None
    created: float
    setup: int
    unsubscribed: float | None = None
    unsubscribed_issue: int | None = None


@dataclass(frozen=True, slots=True)
class IssueLinks:
    """A sent issue as stored: its subject and its links (position, target, hidden)."""

    subject: str
    links: Sequence[tuple[int, str, bool]]


@dataclass(slots=True)
class EmailPlan:
    """Deliveries, opens and clicks of the sent issues, by issue and subscriber index."""

    # (issue, subscriber, status, error, sent time or None)
    deliveries: list[tuple[int, int, str, str | None, float | None]] = field(default_factory=list)
    # (issue, subscriber, is machine, reason, user agent, ip, time)
    opens: list[tuple[int, int, bool, str | None, str, str, float]] = field(default_factory=list)
    # (issue, link position, subscriber, is machine, reason, user agent, ip, time)
    clicks: list[tuple[int, int, int, bool, str | None, str, str, float]] = field(
        default_factory=list
    )
    activities: list[ActivityTuple] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a channel: where it is and what its visit and its clicks are titled."""

    url: str
    value: str
    title: str
    product: bool


class _Weighted(Generic[T]):
    """Items with weights, picked with one random number and a bisection."""

    __slots__ = ("cumulative", "items", "total")

    def __init__(self, items: Iterable[T], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cumulative = list(accumulate(weights))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> T:
        index = bisect_right(self.cumulative, rng.random() * self.total)
        return self.items[min(index, len(self.items) - 1)]


def zipf(count: int, exponent: float = 1.0, scale: float = 1.0) -> list[float]:
    """Power-law weights for items ranked 1..count."""
    return [scale / (rank**exponent) for rank in range(1, count + 1)]


def apportion(weights: Sequence[float], total: int) -> list[int]:
    """`total` shared out in proportion to `weights`, in whole numbers that sum to `total`."""
    weight_sum = sum(weights)
    if total <= 0 or weight_sum <= 0:
        return [0] * len(weights)
    exact = [w * total / weight_sum for w in weights]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: shares[i] - exact[i])
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def ascii_name(text: str) -> str:
    """A name as an email's local part spells it: no accents, spaces or apostrophes."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


def _site(base: str, rng: random.Random, *, shop: bool = False) -> _Weighted[Page]:
    """The pages of a web channel (or the app's screens), power-law weighted."""
    pages: list[Page] = []
    weights: list[float] = []
    brand = f" | {words.BRAND}"

    def add(path: str, title: str, weight: float, product: bool = False) -> None:
        pages.append(Page(base + path, title + brand, f"Page visit '{title}{brand}'", product))
        weights.append(weight)

    statics = [p for p in words.STATIC_PAGES if not shop or p[0] in ("/", "/cart", "/checkout")]
    for (path, title), weight in zip(statics, zipf(len(statics), 1.0, 30.0), strict=True):
        add(path, title, weight)
    for (slug, title), weight in zip(
        words.CATEGORIES, zipf(len(words.CATEGORIES), 1.0, 14.0), strict=True
    ):
        add(f"/c/{slug}", title, weight)
    # Best sellers differ from seed to seed.
    products = [(line, kind) for kind in words.PRODUCT_KINDS for line in words.PRODUCT_LINES]
    rng.shuffle(products)
    for (line, kind), weight in zip(products, zipf(len(products), 0.9, 24.0), strict=True):
        name = f"{line} {kind}"
        slug = "-".join(filter(None, (ascii_name(part) for part in name.split())))
        add(f"/products/{slug}", name, weight, product=True)
    if not shop:
        for (slug, title), weight in zip(
            words.BLOG_POSTS, zipf(len(words.BLOG_POSTS), 1.0, 4.0), strict=True
        ):
            add(f"/blog/{slug}", title, weight)
    return _Weighted(pages, weights)


def _clicks(elements: Sequence[str]) -> _Weighted[tuple[str, str]]:
    items = [(f"Clicked '{value}'", value) for value in elements]
    return _Weighted(items, zipf(len(items), 1.0))


class DemoGenerator:
    """Plans the whole demo from `size`; call the methods in order (they share one generator)."""

    def __init__(self, size: DemoSize) -> None:
        self.size = size
        self.rng = random.Random(size.seed)  # noqa: S311 - sample data, not secrets
        self.until = size.until.timestamp()
        self.start = self.until - size.days * DAY
        self.span = self.until - self.start
        self.hours = size.days * 24
        self.sends = [self._send_time(at) for at in ISSUE_SENDS]
        self.catalog_until = self.start + CATALOG_DISABLED_AT * self.span
        self.newsletter_revision = self.start + NEWSLETTER_REVISION_AT * self.span
        rng = self.rng
        self.sites = {
            WEBSITE: _site(words.SITE, rng),
            SHOP_SPA: _site(words.SHOP, rng, shop=True),
            MOBILE_APP: _site(words.APP, rng),
        }
        support = [
            Page(words.SUPPORT + path, value, f"Page visit '{value}'", product=False)
            for path, value in (
                (path, f"{title} | {words.BRAND} Help") for path, title in words.SUPPORT_ARTICLES
            )
        ]
        self.support = _Weighted(support, zipf(len(support), 1.0))
        self.sources = _Weighted(words.SOURCES, words.SOURCE_WEIGHTS)
        self.product_clicks = _clicks(words.PRODUCT_CLICKS)
        self.general_clicks = _clicks(words.GENERAL_CLICKS)
        self.channels = _Weighted(range(4), CHANNEL_SHARES)
        self.contacts: list[PlannedContact] = []
        self.subscribers: list[PlannedSubscriber] = []

    # -- time ----------------------------------------------------------------------------------

    def time(self, moment: float) -> datetime:
        """A POSIX time as the aware datetime the database stores."""
        return datetime.fromtimestamp(moment, UTC)

    def _send_time(self, at: float) -> float:
        """08:00 UTC on the day `at` of the way into the period, inside the period."""
        moment = self.start + at * self.span
        morning = math.floor(moment / DAY) * DAY + 8 * HOUR
        if morning <= self.start:
            morning = moment
        return min(morning, self.until - HOUR)

    def _traffic(self, moment: float, growth: float) -> float:
        when = datetime.fromtimestamp(moment, UTC)
        weight = HOURLY[when.hour] * WEEKDAY[when.weekday()]
        weight *= 1.0 + growth * (moment - self.start) / self.span
        for send in self.sends:
            # Readers of a newsletter visit the site for a day or two after it goes out.
            if 0 <= moment - send < 2 * DAY:
                weight *= 1.0 + 0.8 * math.exp(-(moment - send) / (12 * HOUR))
        return weight

    def _hour_weights(self, growth: float) -> list[float]:
        return [self._traffic(self.start + (h + 0.5) * HOUR, growth) for h in range(self.hours)]

    # -- contacts ------------------------------------------------------------------------------

    def plan_contacts(self) -> list[PlannedContact]:
        """Every contact, in the order (and with the times) of their creation."""
        rng = self.rng
        per_hour = apportion(self._hour_weights(0.9), self.size.contacts)
        emails: dict[str, int] = {}
        contacts = self.contacts
        for hour, count in enumerate(per_hour):
            begin = self.start + hour * HOUR
            for moment in sorted(begin + rng.random() * HOUR for _ in range(count)):
                contact = PlannedContact(
                    guid=uuid.UUID(int=rng.getrandbits(128), version=4),
                    created=moment,
                    channel=self.channels.pick(rng),
                )
                if rng.random() < IDENTIFIED_SHARE:
                    self._identify(contact, emails)
                contacts.append(contact)
        return contacts

    def _identify(self, contact: PlannedContact, emails: dict[str, int]) -> None:
        rng = self.rng
        first = rng.choice(words.FIRST_NAMES)
        last = rng.choice(words.LAST_NAMES)
        contact.first_name, contact.last_name = first, last
        contact.email = self._email(first, last, emails)
        contact.form = words.FORMS[0] if rng.random() < 0.35 else rng.choice(words.FORMS)
        if rng.random() < 0.75:
            country, cities = rng.choice(words.COUNTRIES)
            contact.country = country
            contact.city = rng.choice(cities)
            if country == "USA":
                contact.state = rng.choice(words.US_STATES)
            if rng.random() < 0.3:
                contact.address1 = f"{rng.randrange(1, 240)} {rng.choice(words.STREETS)}"
                contact.zip = f"{rng.randrange(10_000, 99_999)}"
        if rng.random() < 0.35:
            contact.company_name = rng.choice(words.COMPANIES)
            contact.job_title = rng.choice(words.JOB_TITLES)
        if rng.random() < 0.2:
            contact.mobile_phone = f"+1 555 {rng.randrange(100, 1000)} {rng.randrange(1000, 10000)}"
        if rng.random() < 0.1:
            contact.birthday = date(1950, 1, 1) + timedelta(days=rng.randrange(20_000))
        if rng.random() < 0.02:
            contact.notes = rng.choice(words.NOTES)

    def _email(self, first: str, last: str, taken: dict[str, int]) -> str:
        """A unique address; a repeated one gets the next number (emma.smith7@example.com)."""
        rng = self.rng
        first, last = ascii_name(first), ascii_name(last)
        local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{last}", first))
        domain = rng.choice(words.EMAIL_DOMAINS)
        base = f"{local}@{domain}"
        seen = taken.get(base, 0)
        taken[base] = seen + 1
        return base if not seen else f"{local}{seen + 1}@{domain}"

    # -- the newsletter --------------------------------------------------------------------------

    def plan_subscribers(self) -> list[PlannedSubscriber]:
        """Identified contacts who signed up to the newsletter, in the order they did."""
        rng = self.rng
        identified = [i for i, c in enumerate(self.contacts) if c.email is not None]
        chosen = sorted(rng.sample(identified, min(SUBSCRIBERS, len(identified) // 2)))
        setups = _Weighted(range(4), MAIL_SETUPS)
        planned = []
        for index in chosen:
            contact = self.contacts[index]
            assert contact.email is not None  # identified contacts all have one
            # They sign up in their first session, with the newsletter form.
            contact.form = words.FORMS[0]
            planned.append(
                PlannedSubscriber(
                    contact=index,
                    email=contact.email.lower(),
                    first_name=contact.first_name,
                    last_name=contact.last_name,
                    created=min(contact.created + 20 + rng.random() * 300, self.until - 1),
                    setup=setups.pick(rng),
                )
            )
        planned.sort(key=lambda s: s.created)
        self.subscribers = planned
        return planned

    def plan_email(self, issues: Sequence[IssueLinks]) -> EmailPlan:
        """Deliveries, opens, clicks and unsubscribes of the sent issues (one per send time)."""
        plan = EmailPlan()
        for number, (issue, send) in enumerate(zip(issues, self.sends, strict=True)):
            self._send(plan, number, issue, send, ISSUE_OPEN_RATES[number % 2])
        return plan

    def _send(
        self, plan: EmailPlan, number: int, issue: IssueLinks, send: float, open_rate: float
    ) -> None:
        rng = self.rng
        visible = [(position, target) for position, target, hidden in issue.links if not hidden]
        hidden = [position for position, _target, is_hidden in issue.links if is_hidden]
        chosen_link = _Weighted(visible, zipf(len(visible), 1.2))
        subject = issue.subject
        recipients = [
            (index, s)
            for index, s in enumerate(self.subscribers)
            if s.created < send and (s.unsubscribed is None or s.unsubscribed > send)
        ]
        for order, (index, subscriber) in enumerate(recipients):
            sent = send + order / SENDING_RATE
            if rng.random() < FAILED_DELIVERY:
                error = f"550 5.1.1 <{subscriber.email}>: Recipient address rejected: User unknown"
                plan.deliveries.append((number, index, "failed", error, None))
                continue
            plan.deliveries.append((number, index, "sent", None, sent))
            setup = subscriber.setup

            def hit_open(agent: str, ip: str, moment: float, index: int = index) -> bool:
                if moment >= self.until:
                    return False
                verdict = classify(HitKind.OPEN, user_agent=agent, ip=ip)
                plan.opens.append((number, index, *_verdict(verdict), agent, ip, moment))
                return not verdict.is_machine

            def hit_link(
                position: int,
                agent: str,
                ip: str,
                moment: float,
                index: int = index,
                sent: float = sent,
                hidden_link: bool = False,
            ) -> bool:
                if moment >= self.until:
                    return False
                verdict = classify(
                    HitKind.CLICK,
                    user_agent=agent,
                    ip=ip,
                    seconds_since_delivery=moment - sent,
                    hidden_link=hidden_link,
                )
                plan.clicks.append((number, position, index, *_verdict(verdict), agent, ip, moment))
                return not verdict.is_machine

            if setup == APPLE:
                # Apple Mail Privacy Protection fetches the pixel soon after delivery.
                hit_open(words.APPLE_PROXY, _ip(rng, 17), sent + 20 + rng.random() * 900)
            if setup == CORPORATE and rng.random() < SCANNED_CORPORATE:
                agent = rng.choice(words.SCANNER_AGENTS)
                ip = _ip(rng, 40, 107) if rng.random() < 0.7 else _ip(rng, 148, 163)
                moment = sent + 1 + rng.random() * 6
                for position, _target in visible:
                    hit_link(position, agent, ip, moment)
                    moment += rng.random()
                for position in hidden:
                    hit_link(position, agent, ip, moment, hidden_link=True)
            if rng.random() >= open_rate:
                continue
            agent, ip = self._reader(setup)
            moment = sent + min(rng.lognormvariate(math.log(2.5 * HOUR), 1.3), 6 * DAY)
            opened_by_human = False
            for again in range(1 if rng.random() < 0.75 else rng.randrange(2, 4)):
                at = moment + again * rng.random() * DAY
                human = hit_open(agent, ip, at)
                if human and not opened_by_human:
                    opened_by_human = True
                    plan.activities.append(
                        (
                            at,
                            subscriber.contact,
                            NO_CHANNEL,
                            EMAIL_OPEN,
                            f"Opened email '{subject}'"[:MAX_TITLE_LENGTH],
                            subject[:MAX_VALUE_LENGTH],
                            None,
                            None,
                        )
                    )
            if rng.random() < CLICK_GIVEN_OPEN:
                browser = (
                    words.BROWSER_AGENTS[2] if setup == APPLE else rng.choice(words.BROWSER_AGENTS)
                )
                home = _ip(rng, rng.choice(words.HOME_NETWORKS))
                at = moment + 5 + rng.random() * 240
                for _ in range(1 if rng.random() < 0.7 else 2):
                    position, target = chosen_link.pick(rng)
                    if hit_link(position, browser, home, at):
                        plan.activities.append(
                            (
                                at,
                                subscriber.contact,
                                NO_CHANNEL,
                                EMAIL_CLICK,
                                f"Clicked link in email '{subject}'"[:MAX_TITLE_LENGTH],
                                subject[:MAX_VALUE_LENGTH],
                                target,
                                None,
                            )
                        )
                    at += 10 + rng.random() * 120
            if rng.random() < UNSUBSCRIBE_GIVEN_OPEN and moment + 60 < self.until:
                subscriber.unsubscribed = moment + 60
                subscriber.unsubscribed_issue = number

    def _reader(self, setup: int) -> tuple[str, str]:
        """The user agent and address a subscriber's email client opens with."""
        rng = self.rng
        if setup == GMAIL:
            # Gmail fetches images through its proxy when the email is read.
            return words.GMAIL_PROXY, _ip(rng, 66, 249)
        if setup == CORPORATE:
            # Outlook loads images through Microsoft's network: a human open all the same.
            return words.OUTLOOK, _ip(rng, 40, 107)
        home = _ip(rng, rng.choice(words.HOME_NETWORKS))
        if setup == APPLE:
            return words.IPHONE_MAIL, home
        return rng.choice((words.THUNDERBIRD, *words.BROWSER_AGENTS)), home

    # -- consents ------------------------------------------------------------------------------

    def plan_agreements(self) -> list[tuple[float, int, str, int, bool, int]]:
        """Agree and revoke events: (time, contact index, consent, revision number, agreed,
        channel index), by time.

        About 70 % of contacts agree to tracking when first seen; a few revoke later and some
        of those agree again. Subscribers agree to the newsletter consent when they sign up (to
        the revision current then) and revoke it when they unsubscribe; some subscribers agree
        again to the newsletter consent's new revision.
        """
        rng = self.rng
        events: list[tuple[float, int, str, int, bool, int]] = []
        for index, contact in enumerate(self.contacts):
            if rng.random() >= 0.7:
                continue
            agreed = min(contact.created + 1 + rng.random() * 20, self.until - 1)
            events.append((agreed, index, TRACKING_CONSENT, 2, True, contact.channel))
            if rng.random() < 0.06:
                revoked = agreed + rng.random() * (self.until - agreed)
                events.append((revoked, index, TRACKING_CONSENT, 2, False, contact.channel))
                if rng.random() < 0.3:
                    again = revoked + rng.random() * (self.until - revoked)
                    events.append((again, index, TRACKING_CONSENT, 2, True, contact.channel))

        def revision(moment: float) -> int:
            # An event records the revision current at its time.
            return 2 if moment < self.newsletter_revision else 3

        for subscriber in self.subscribers:
            index, signed_up = subscriber.contact, subscriber.created
            events.append(
                (signed_up, index, NEWSLETTER_CONSENT, revision(signed_up), True, WEBSITE)
            )
            left = subscriber.unsubscribed
            if left is not None:
                events.append((left, index, NEWSLETTER_CONSENT, revision(left), False, WEBSITE))
            elif revision(signed_up) == 2 and rng.random() < 0.25:
                again = self.newsletter_revision + rng.random() * (
                    self.until - self.newsletter_revision
                )
                events.append((again, index, NEWSLETTER_CONSENT, 3, True, WEBSITE))
        events.sort(key=itemgetter(0))
        return events

    # -- activities ----------------------------------------------------------------------------

    def activity_hours(self, email: Sequence[ActivityTuple]) -> Iterator[list[ActivityTuple]]:
        """The activity stream, one hour at a time, each hour sorted by time.

        `size.activities` in all, the email activities included (unless those alone are more).
        """
        rng = self.rng
        email_by_hour: dict[int, list[ActivityTuple]] = {}
        for row in email:
            hour = min(int((row[0] - self.start) // HOUR), self.hours - 1)
            email_by_hour.setdefault(hour, []).append(row)
        web_total = max(0, self.size.activities - len(email))
        quotas = apportion(self._hour_weights(1.3), web_total)
        contacts = self.contacts
        # Engagement: heavy-tailed, identified contacts come back more.
        engagement = list(
            accumulate(
                min(rng.paretovariate(1.2), 400.0) * (2.0 if c.email else 1.0) for c in contacts
            )
        )
        created = [c.created for c in contacts]
        carry = 0
        first_new = 0
        for hour in range(self.hours):
            begin = self.start + hour * HOUR
            end = min(begin + HOUR, self.until)
            rows = email_by_hour.get(hour, [])
            quota = quotas[hour] + carry
            known = first_new  # contacts created before this hour may come back
            new_end = bisect_right(created, end, lo=first_new)
            # A new contact's first visit is what created it.
            for index in range(first_new, new_end):
                if quota <= 0:
                    break
                contact = contacts[index]
                length = min(self._session_length(first=contact.form is not None), quota)
                quota -= self._session(
                    rows, index, contact.channel, contact.created, end, length, contact.form
                )
            first_new = new_end
            while quota > 0 and known > 0:
                pick = rng.random() * engagement[known - 1]
                index = min(bisect_right(engagement, pick, 0, known), known - 1)
                contact = contacts[index]
                channel = contact.channel if rng.random() < 0.75 else self.channels.pick(rng)
                length = min(self._session_length(first=False), quota)
                start = begin + rng.random() * (end - begin)
                quota -= self._session(rows, index, channel, start, end, length, None)
            carry = quota
            rows.sort(key=itemgetter(0))
            yield rows

    def _session_length(self, *, first: bool) -> int:
        length = 1 + int(self.rng.expovariate(1 / 2.6))
        return min(max(length, 2 if first else 1), 15)

    def _session(
        self,
        rows: list[ActivityTuple],
        contact: int,
        channel: int,
        start: float,
        end: float,
        length: int,
        form: str | None,
    ) -> int:
        """Append one session of `length` activities within [start, end); returns `length`."""
        rng = self.rng
        gaps = [6.0 + rng.expovariate(1 / 50.0) for _ in range(length - 1)]
        spread = sum(gaps)
        room = (end - start) * 0.999
        if spread > room:  # keep the session inside its hour: hours are inserted in order
            gaps = [gap * room / spread for gap in gaps]
        moment = start
        if channel == SUPPORT:
            self._support_session(rows, contact, moment, gaps, form)
            return length
        web = channel != MOBILE_APP
        page = self.sites[channel].pick(rng)
        url = page.url
        referrer = None
        if web:
            referrer, query = self.sources.pick(rng)
            if query:
                url = f"{url}{'&' if '?' in url else '?'}{query}"
        rows.append((moment, contact, channel, PAGE_VISIT, page.title, page.value, url, referrer))
        last = length - 1
        for step in range(1, length):
            moment += gaps[step - 1]
            if form is not None and step == last:
                rows.append(
                    (moment, contact, channel, DATA_INPUT, f"Data input '{form}'", form, url, None)
                )
                break
            draw = rng.random()
            if draw < 0.6:
                previous = url
                page = self.sites[channel].pick(rng)
                url = page.url
                rows.append(
                    (
                        moment,
                        contact,
                        channel,
                        PAGE_VISIT,
                        page.title,
                        page.value,
                        url,
                        previous if web else None,
                    )
                )
            elif draw < 0.92:
                clicks = self.product_clicks if page.product else self.general_clicks
                title, value = clicks.pick(rng)
                rows.append((moment, contact, channel, CLICK, title, value, url, None))
            elif draw < 0.94:
                value = rng.choice(words.FORMS)
                rows.append(
                    (
                        moment,
                        contact,
                        channel,
                        DATA_INPUT,
                        f"Data input '{value}'",
                        value,
                        url,
                        None,
                    )
                )
            elif moment < self.catalog_until and draw < 0.965:
                title = f"{CATALOG_NAME} '{words.CATALOG}'"
                rows.append(
                    (moment, contact, channel, CATALOG_TYPE, title, words.CATALOG, url, None)
                )
            else:
                value = rng.choice(words.VIDEOS)
                title = f"{VIDEO_NAME} '{value}'"
                rows.append((moment, contact, channel, VIDEO_TYPE, title, value, url, None))
        return length

    def _support_session(
        self,
        rows: list[ActivityTuple],
        contact: int,
        moment: float,
        gaps: Sequence[float],
        form: str | None,
    ) -> None:
        """Help-centre articles, ending in a support ticket (a form) now and then."""
        rng = self.rng
        for step in range(len(gaps) + 1):
            if step:
                moment += gaps[step - 1]
            last = step == len(gaps)
            if last and (form is not None or rng.random() < 0.4):
                value = form or f"Support ticket: {rng.choice(words.SUPPORT_TOPICS)}"
                url = f"{words.SUPPORT}/tickets/new"
                rows.append(
                    (
                        moment,
                        contact,
                        SUPPORT,
                        DATA_INPUT,
                        f"Data input '{value}'",
                        value,
                        url,
                        None,
                    )
                )
                continue
            page = self.support.pick(rng)
            rows.append(
                (moment, contact, SUPPORT, PAGE_VISIT, page.title, page.value, page.url, None)
            )


TRACKING_CONSENT = "TrackingConsent"
NEWSLETTER_CONSENT = "NewsletterConsent"


def _verdict(verdict: Verdict) -> tuple[bool, str | None]:
    return verdict.is_machine, verdict.reason


def _ip(rng: random.Random, first: int, second: int | None = None) -> str:
    second = rng.randrange(1, 255) if second is None else second
    return f"{first}.{second}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
