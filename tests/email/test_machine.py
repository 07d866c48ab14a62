"""Machine traffic: every rule, and the Microsoft nuance between opens and clicks."""

from __future__ import annotations

import pytest

from contacthub.email.machine import HUMAN, HitKind, Verdict, classify

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
HOME_IP = "198.51.100.23"
APPLE_IP = "17.58.63.10"
MICROSOFT_IPS = ["40.92.1.2", "40.107.200.1", "52.101.4.5", "104.47.10.11", "2a01:111:f400::25"]
LINK_KINDS = [HitKind.CLICK, HitKind.UNSUBSCRIBE_GET]


def hit(kind: HitKind, **overrides: object) -> Verdict:
    arguments: dict[str, object] = {
        "user_agent": CHROME,
        "ip": HOME_IP,
        "seconds_since_delivery": 3600.0,
    }
    arguments.update(overrides)
    return classify(kind, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(HitKind))
def test_an_ordinary_browser_is_human(kind: HitKind) -> None:
    assert hit(kind) == HUMAN
    assert hit(kind, user_agent=IPHONE_MAIL) == HUMAN
    assert hit(kind, seconds_since_delivery=None) == HUMAN


def test_honeypot_link_is_machine_whoever_follows_it() -> None:
    verdict = hit(HitKind.CLICK, hidden_link=True)
    assert verdict == Verdict(True, "honeypot link")


@pytest.mark.parametrize("kind", list(HitKind))
@pytest.mark.parametrize("method", ["HEAD", "head", "OPTIONS"])
def test_methods_other_than_get_and_post_are_machine(kind: HitKind, method: str) -> None:
    verdict = hit(kind, method=method)
    assert verdict.is_machine
    assert verdict.reason == f"{method.upper()} request"


def test_post_is_not_machine_by_itself() -> None:
    assert hit(HitKind.CLICK, method="POST") == HUMAN


@pytest.mark.parametrize("kind", list(HitKind))
@pytest.mark.parametrize("agent", [None, "", "   "])
def test_no_user_agent_is_machine(kind: HitKind, agent: str | None) -> None:
    assert hit(kind, user_agent=agent) == Verdict(True, "no user agent")


def test_gmail_and_yahoo_image_proxies_mark_opens() -> None:
    assert hit(HitKind.OPEN, user_agent=GMAIL_PROXY, ip="66.249.84.1") == Verdict(
        True, "Gmail image proxy"
    )
    assert hit(HitKind.OPEN, user_agent=YAHOO_PROXY) == Verdict(True, "Yahoo Mail image proxy")


def test_apple_mail_privacy_protection() -> None:
    assert hit(HitKind.OPEN, user_agent="Mozilla/5.0", ip=APPLE_IP) == Verdict(
        True, "Apple Mail Privacy Protection"
    )
    # Seen through a dual-stack socket.
    assert hit(HitKind.OPEN, user_agent="Mozilla/5.0", ip=f"::ffff:{APPLE_IP}").is_machine


def test_apple_network_with_a_real_client_is_human() -> None:
    # Someone at Apple reading their mail is a person.
    assert hit(HitKind.OPEN, user_agent=IPHONE_MAIL, ip=APPLE_IP) == HUMAN


def test_bare_agent_open_outside_apple_is_left_human() -> None:
    assert hit(HitKind.OPEN, user_agent="Mozilla/5.0", ip=HOME_IP) == HUMAN


@pytest.mark.parametrize("kind", LINK_KINDS)
def test_bare_agent_on_links_is_machine(kind: HitKind) -> None:
    assert hit(kind, user_agent="Mozilla/5.0") == Verdict(True, "bare Mozilla/5.0 user agent")


@pytest.mark.parametrize(
    ("agent", "vendor"),
    [
        ("Mozilla/5.0 (compatible; Mimecast URL Protect)", "Mimecast"),
        ("Proofpoint URL Defense/1.0", "Proofpoint"),
        ("Mozilla/5.0 Barracuda Sentinel (EE)", "Barracuda"),
        ("Symantec Email Security.cloud Link Scanner", "Symantec"),
        ("Cisco IronPort URL Filtering", "Cisco IronPort"),
        ("Mozilla/5.0 (Trend Micro Web Reputation)", "Trend Micro"),
        ("Mozilla/5.0 (Windows NT 6.1) AppleWebKit/534 BingPreview/1.0b", "Microsoft"),
        ("Microsoft Office Existence Discovery", "Microsoft"),
    ],
)
@pytest.mark.parametrize("kind", list(HitKind))
def test_scanners_that_name_themselves(kind: HitKind, agent: str, vendor: str) -> None:
    assert hit(kind, user_agent=agent) == Verdict(True, f"security scanner user agent ({vendor})")


@pytest.mark.parametrize(
    "agent",
    [
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0)",
        "Slackbot-LinkExpanding 1.0",
        "SomeCrawler/3.1",
        "Mozilla/5.0 (compatible; spider)",
        "python-requests/2.32.3",
        "Python-urllib/3.11",
        "curl/8.5.0",
        "Wget/1.21.4",
        "Go-http-client/1.1",
        "okhttp/4.12.0",
        "Apache-HttpClient/4.5.14 (Java/17)",
        "Mozilla/5.0 HeadlessChrome/126.0.0.0",
        "facebookexternalhit/1.1",
        "WhatsApp/2.23.20.0 A",
    ],
)
@pytest.mark.parametrize("kind", list(HitKind))
def test_generic_bots(kind: HitKind, agent: str) -> None:
    assert hit(kind, user_agent=agent) == Verdict(True, "bot user agent")


def test_cubot_phones_are_not_bots() -> None:
    agent = "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 Chrome/126 Mobile"
    assert hit(HitKind.CLICK, user_agent=agent) == HUMAN


@pytest.mark.parametrize("ip", MICROSOFT_IPS)
def test_microsoft_network_does_not_mark_an_open(ip: str) -> None:
    # Outlook loads images through Microsoft's own network: these are real opens (SPEC §3).
    assert hit(HitKind.OPEN, ip=ip, user_agent=OUTLOOK) == HUMAN
    assert hit(HitKind.OPEN, ip=ip) == HUMAN


@pytest.mark.parametrize("ip", MICROSOFT_IPS)
@pytest.mark.parametrize("kind", LINK_KINDS)
def test_microsoft_network_marks_clicks(kind: HitKind, ip: str) -> None:
    # A human click ends in the recipient's own browser, not in Microsoft's network.
    assert hit(kind, ip=ip) == Verdict(True, "security gateway address (Microsoft)")


@pytest.mark.parametrize(
    ("ip", "vendor"),
    [
        ("67.231.150.1", "Proofpoint"),
        ("148.163.150.9", "Proofpoint"),
        ("209.222.82.7", "Barracuda"),
    ],
)
def test_other_gateway_ranges_mark_clicks_not_opens(ip: str, vendor: str) -> None:
    assert hit(HitKind.CLICK, ip=ip) == Verdict(True, f"security gateway address ({vendor})")
    assert hit(HitKind.OPEN, ip=ip) == HUMAN


def test_addresses_next_to_the_ranges_are_not_marked() -> None:
    assert hit(HitKind.CLICK, ip="40.94.0.1") == HUMAN  # just past 40.92.0.0/15
    assert hit(HitKind.CLICK, ip="104.47.128.1") == HUMAN  # just past 104.47.0.0/17
    assert hit(HitKind.CLICK, ip="2a01:111:f401::1") == HUMAN


@pytest.mark.parametrize("ip", [None, "", "not-an-ip", "999.1.1.1", "40.92.0.0/15"])
def test_unusable_addresses_are_ignored(ip: str | None) -> None:
    assert hit(HitKind.CLICK, ip=ip) == HUMAN


@pytest.mark.parametrize("kind", LINK_KINDS)
def test_fast_clicks_are_machine(kind: HitKind) -> None:
    assert hit(kind, seconds_since_delivery=2.5) == Verdict(True, "within 10 s of delivery")
    # Before the send was even recorded: certainly not a person.
    assert hit(kind, seconds_since_delivery=-1.0).is_machine
    assert hit(kind, seconds_since_delivery=10.0) == HUMAN


def test_fast_click_threshold_is_configurable() -> None:
    assert hit(HitKind.CLICK, seconds_since_delivery=20, min_human_seconds=30).reason == (
        "within 30 s of delivery"
    )
    assert hit(HitKind.CLICK, seconds_since_delivery=5, min_human_seconds=0) == HUMAN


def test_fast_opens_are_human() -> None:
    # People do read mail the moment it arrives; only proxies are told apart on opens.
    assert hit(HitKind.OPEN, seconds_since_delivery=1.0) == HUMAN


def test_first_matching_rule_gives_the_reason() -> None:
    verdict = hit(HitKind.CLICK, hidden_link=True, method="HEAD", user_agent=None)
    assert verdict.reason == "honeypot link"
    verdict = hit(HitKind.CLICK, user_agent="curl/8", ip=MICROSOFT_IPS[0], seconds_since_delivery=1)
    assert verdict.reason == "bot user agent"


def test_hidden_flag_means_nothing_on_an_open() -> None:
    assert hit(HitKind.OPEN, hidden_link=True) == HUMAN


def test_reasons_fit_the_database_column() -> None:
    assert len(hit(HitKind.CLICK, method="X" * 500).reason or "") <= 100
