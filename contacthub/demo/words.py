"""The small built-in word lists the demo data is made of.

The demo company is Northwind Outdoor, a shop for outdoor gear with a website, a single-page
shop, a mobile app and a support desk. Every web address is under the reserved `.example` top
level domain and every email address under `example.com`, `example.net` or `example.org`
(RFC 2606): demo data can never reach a real site or a real mailbox, even if an issue is sent.
Lists are ordered from most to least common where the order matters (they get power-law weights).
"""

from __future__ import annotations

BRAND = "Northwind Outdoor"
SITE = "https://www.northwind.example"
SHOP = "https://shop.northwind.example"
APP = "northwind://app"
SUPPORT = "https://support.northwind.example"

FIRST_NAMES = (
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Oliver", "Sophia", "Elijah", "Isabella", "James",
    "Mia", "Lucas", "Amelia", "Mason", "Harper", "Ethan", "Evelyn", "Jakub", "Tereza", "Jan",
    "Eliška", "Lukas", "Hannah", "Felix", "Lena", "Paul", "Marie", "Jonas", "Léa", "Hugo",
    "Chloé", "Louis", "Sofia", "Mateo", "Lucía", "Daniel", "Julia", "Henrik", "Astrid", "Erik",
    "Freja", "Zofia", "Piotr", "Anna", "Tomás", "Aoife", "Sean", "Grace", "Ruby", "Jack",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Garcia", "Wilson",
    "Taylor", "Anderson", "Thomas", "Moore", "Martin", "Novák", "Svoboda", "Dvořák", "Černá",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Dubois", "Bernard",
    "Moreau", "Laurent", "Rossi", "Russo", "García", "Fernández", "López", "Andersson",
    "Johansson", "Nilsson", "Kowalski", "Nowak", "Wiśniewska", "Murphy", "Kelly", "O'Brien",
    "van Dijk", "de Vries", "Jansen", "Hughes", "Evans", "Walker", "Wright", "Clarke",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")
COMPANIES = (
    "Acme Corporation", "Globex", "Initech", "Umbrella Logistics", "Stark Outfitters",
    "Wayne Enterprises", "Hooli", "Vandelay Industries", "Soylent Foods", "Tyrell Systems",
    "Cyberdyne Systems", "Wonka Industries", "Gringotts Finance", "Oceanic Airlines",
    "Massive Dynamic", "Pied Piper", "Aperture Labs", "Blue Sun", "Duff Breweries",
    "Prestige Worldwide", "Dunder Mifflin", "Bluth Company", "Monarch Solutions", "Nakatomi",
)  # fmt: skip
JOB_TITLES = (
    "Software Engineer", "Marketing Manager", "Teacher", "Nurse", "Project Manager",
    "Accountant", "Designer", "Sales Representative", "Mountain Guide", "Data Analyst",
    "Product Owner", "Photographer", "Physiotherapist", "Student", "Consultant", "Architect",
)  # fmt: skip
# ISO 3166-1 alpha-3 codes (what ContactCountry takes), with a few cities each.
COUNTRIES = (
    ("USA", ("Denver", "Seattle", "Portland", "Boulder", "Salt Lake City", "Boston")),
    ("GBR", ("London", "Manchester", "Edinburgh", "Bristol")),
    ("DEU", ("Munich", "Berlin", "Hamburg", "Freiburg")),
    ("CZE", ("Prague", "Brno", "Liberec")),
    ("CAN", ("Vancouver", "Calgary", "Toronto")),
    ("FRA", ("Lyon", "Grenoble", "Paris")),
    ("NLD", ("Amsterdam", "Utrecht")),
    ("SWE", ("Stockholm", "Gothenburg")),
    ("AUT", ("Innsbruck", "Vienna")),
    ("POL", ("Kraków", "Warsaw")),
    ("NOR", ("Oslo", "Bergen")),
    ("AUS", ("Melbourne", "Sydney")),
)
US_STATES = ("CO", "WA", "OR", "CO", "UT", "MA", "CA", "NY", "MT", "VT")

PRODUCT_LINES = (
    "Summit", "Ridge", "Alpine", "Cascade", "Trailblazer", "Glacier", "Timberline", "Nomad",
    "Horizon", "Canyon", "Basecamp", "Aurora",
)  # fmt: skip
PRODUCT_KINDS = (
    "Rain Jacket", "Hiking Boots", "Trail Runners", "Down Jacket", "Fleece Pullover",
    "Daypack 24L", "Backpack 45L", "Tent 2P", "Ultralight Tent 1P", "Sleeping Bag -5°C",
    "Sleeping Pad", "Headlamp 400", "Trekking Poles", "Merino Base Layer", "Softshell Pants",
)  # fmt: skip
CATEGORIES = (
    ("sale", "Sale"), ("new-arrivals", "New arrivals"), ("jackets", "Jackets"),
    ("footwear", "Footwear"), ("backpacks", "Backpacks"), ("tents", "Tents"),
    ("sleeping-bags", "Sleeping bags & pads"), ("clothing", "Clothing"),
    ("accessories", "Accessories"), ("women", "Women"), ("men", "Men"), ("kids", "Kids"),
)  # fmt: skip
BLOG_POSTS = (
    ("how-to-layer-for-winter-hiking", "How to layer for winter hiking"),
    ("choosing-your-first-tent", "Choosing your first tent"),
    ("ten-best-day-hikes-in-the-alps", "The ten best day hikes in the Alps"),
    ("waterproof-vs-water-resistant", "Waterproof vs water-resistant: what the labels mean"),
    ("packing-list-for-a-weekend-trek", "Packing list for a weekend trek"),
    ("caring-for-down-jackets", "Caring for your down jacket"),
    ("trail-running-for-beginners", "Trail running for beginners"),
    ("leave-no-trace", "Leave no trace: seven principles"),
    ("how-we-test-our-boots", "How we test our boots"),
    ("sleeping-warm-in-the-mountains", "Sleeping warm in the mountains"),
)
# Pages every visitor can reach, most visited first: (path, title).
STATIC_PAGES = (
    ("/", "Outdoor gear for every trail"),
    ("/c/sale", "Sale"),
    ("/cart", "Your cart"),
    ("/search?q=rain+jacket", "Search: rain jacket"),
    ("/stores", "Find a store"),
    ("/checkout", "Checkout"),
    ("/account/sign-in", "Sign in"),
    ("/size-guide", "Size guide"),
    ("/shipping", "Shipping and delivery"),
    ("/returns", "Returns and exchanges"),
    ("/search?q=tent", "Search: tent"),
    ("/account/orders", "Your orders"),
    ("/about", "About us"),
    ("/sustainability", "Our sustainability promise"),
    ("/contact", "Contact us"),
    ("/search?q=hiking+boots", "Search: hiking boots"),
    ("/gift-cards", "Gift cards"),
    ("/careers", "Careers"),
    ("/privacy", "Privacy policy"),
)
SUPPORT_ARTICLES = (
    ("/articles/track-my-order", "Where is my order?"),
    ("/articles/start-a-return", "Start a return"),
    ("/articles/warranty", "Warranty and repairs"),
    ("/articles/size-exchange", "Exchange for another size"),
    ("/articles/reset-password", "Reset your password"),
    ("/articles/waterproofing", "Re-waterproofing your jacket"),
)
# Where a web session comes from: (referrer or None for direct, UTM query or "").
SOURCES = (
    (None, ""),
    ("https://www.google.com/", ""),
    ("https://www.bing.com/", ""),
    ("https://duckduckgo.com/", ""),
    ("https://www.facebook.com/", "utm_source=facebook&utm_medium=social&utm_campaign=spring"),
    ("https://www.instagram.com/", "utm_source=instagram&utm_medium=social&utm_campaign=spring"),
    ("https://www.reddit.com/r/hiking/", ""),
    ("https://www.youtube.com/", "utm_source=youtube&utm_medium=video"),
    (
        "https://www.outdoorgearlab.example/best-rain-jackets",
        "utm_source=review&utm_medium=referral",
    ),
)
SOURCE_WEIGHTS = (34, 36, 5, 3, 7, 6, 3, 3, 3)
# Clicked elements, most clicked first; on product pages and anywhere.
PRODUCT_CLICKS = (
    "Add to cart", "Buy now button", "Size guide link", "Product image gallery",
    "Colour: Forest green", "Wishlist heart", "Read reviews", "Play product video",
    "Compare products", "Write a review",
)  # fmt: skip
GENERAL_CLICKS = (
    "Cookie banner: Accept all", "Menu: Sale", "Free shipping banner", "Search button",
    "Newsletter sign-up button", "Checkout button", "Chat with us", "Filter: Waterproof",
    "Sort by price", "Load more products", "Store locator", "Menu: New arrivals",
    "Filter: Women", "Footer: Returns", "Cookie banner: Settings",
)  # fmt: skip
# Forms whose sending is a datainput: (value, share).
FORMS = (
    "Newsletter sign-up form", "Registration form", "Checkout: shipping address",
    "Contact form", "Store event registration",
)  # fmt: skip
SUPPORT_TOPICS = (
    "Delivery delay", "Return request", "Size exchange", "Warranty claim", "Payment question",
    "Product question", "Damaged item",
)  # fmt: skip
VIDEOS = (
    "Summit Rain Jacket: fit and features", "Pitching the Basecamp Tent 2P in 3 minutes",
    "How to adjust trekking poles", "Behind the scenes: our boot lab",
)  # fmt: skip
CATALOG = "Spring/Summer catalog (PDF)"

# Email clients: user agents as their hits carry them.
BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148"
)
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
APPLE_PROXY = "Mozilla/5.0"
SCANNER_AGENTS = (
    # Security gateways that pose as a browser, and two that name themselves.
    BROWSER_AGENTS[0],
    "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
    "Mimecast URL Protect",
)
STREETS = (
    "Main Street", "Mountain View Road", "Lake Drive", "Forest Lane", "Hauptstraße",
    "Rue des Alpes", "High Street", "Pine Avenue", "Riverside Walk",
)  # fmt: skip
NOTES = (
    "Prefers to be contacted by email.",
    "Asked about group discounts for a hiking club.",
    "Returned boots twice for size; recommend half a size up.",
)
# First octets of home broadband addresses that readers open and click from.
HOME_NETWORKS = (81, 86, 92, 94, 109, 178, 185, 212)

NEWSLETTER = "Northwind Outdoor News"
NEWSLETTER_SENDER = "news@northwind.example"


def _issue_html(title: str, intro: str, links: tuple[tuple[str, str], ...]) -> str:
    items = "\n".join(f'      <li><a href="{SITE}{path}">{text}</a></li>' for path, text in links)
    return (
        "<!doctype html>\n<html>\n  <body>\n"
        f"    <h1>{title}</h1>\n"
        '    <p>Hi {{ first_name | "there" }},</p>\n'
        f"    <p>{intro}</p>\n"
        f"    <ul>\n{items}\n    </ul>\n"
        "    <p>See you on the trail,<br>The Northwind Outdoor team</p>\n"
        '    <p><a href="{{ view_in_browser_url }}">View in your browser</a> · '
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>\n'
        "  </body>\n</html>\n"
    )


CAMPAIGN = "?utm_source=newsletter&utm_medium=email&utm_campaign="
# (subject, HTML): two issues that went out, and a draft.
ISSUES = (
    (
        "Spring sale: 20% off rain gear",
        _issue_html(
            "Spring sale: 20% off rain gear",
            "April showers are coming. Our rain jackets, pants and covers are 20% off this week.",
            (
                (f"/c/sale{CAMPAIGN}spring-sale", "Shop the sale"),
                (f"/c/jackets{CAMPAIGN}spring-sale", "Rain jackets"),
                (
                    f"/blog/waterproof-vs-water-resistant{CAMPAIGN}spring-sale",
                    "What the labels mean",
                ),
                (f"/stores{CAMPAIGN}spring-sale", "Find a store near you"),
            ),
        ),
    ),
    (
        "New arrivals: ultralight tents are here",
        _issue_html(
            "New arrivals: ultralight tents are here",
            "Our lightest tents ever weigh less than a kilogram. Meet them before summer.",
            (
                (f"/c/new-arrivals{CAMPAIGN}new-tents", "See what is new"),
                (f"/c/tents{CAMPAIGN}new-tents", "All tents"),
                (f"/blog/choosing-your-first-tent{CAMPAIGN}new-tents", "Choosing your first tent"),
                (f"/blog/leave-no-trace{CAMPAIGN}new-tents", "Leave no trace"),
                (f"/gift-cards{CAMPAIGN}new-tents", "Gift cards"),
            ),
        ),
    ),
    (
        "Summer camping checklist",
        _issue_html(
            "Your summer camping checklist",
            "Everything you need for a night under the stars, in one list.",
            (
                (f"/blog/packing-list-for-a-weekend-trek{CAMPAIGN}summer", "The checklist"),
                (f"/c/sleeping-bags{CAMPAIGN}summer", "Sleeping bags and pads"),
            ),
        ),
    ),
)

# Consent texts: (code name, display name, English short and full text, German short and full
# text). The newsletter consent's English text was reworded during the period.
TRACKING_TEXTS = (
    "<p>May we record which pages you visit, to improve our shop?</p>",
    "<p>We record the pages you visit, the buttons you click and the forms you send on our "
    "website, shop and app, to improve them and to show you relevant products. You can revoke "
    "this at any time in your account.</p>",
    "<p>Dürfen wir aufzeichnen, welche Seiten Sie besuchen, um unseren Shop zu verbessern?</p>",
    "<p>Wir zeichnen die besuchten Seiten, geklickten Schaltflächen und gesendeten Formulare "
    "auf unserer Website, im Shop und in der App auf, um sie zu verbessern und Ihnen passende "
    "Produkte zu zeigen. Sie können dies jederzeit in Ihrem Konto widerrufen.</p>",
)
NEWSLETTER_TEXTS = (
    "<p>Send me the Northwind Outdoor newsletter.</p>",
    "<p>We send our newsletter about twice a month: new gear, sales and trail stories. Every "
    "email has an unsubscribe link.</p>",
    "<p>Senden Sie mir den Newsletter von Northwind Outdoor.</p>",
    "<p>Wir senden unseren Newsletter etwa zweimal im Monat: neue Ausrüstung, Angebote und "
    "Geschichten vom Trail. Jede E-Mail enthält einen Abmeldelink.</p>",
)
NEWSLETTER_TEXTS_V3 = (
    "<p>Send me the Northwind Outdoor newsletter, with offers picked for me.</p>",
    "<p>We send our newsletter about twice a month: new gear, sales and trail stories. We pick "
    "offers using the pages you visited, if you agreed to tracking. Every email has an "
    "unsubscribe link.</p>",
)
