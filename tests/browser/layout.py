"""What a person would call a broken layout, measured in the browser on the page as it is shown.

Checked on every admin page at a phone's width and a desktop's (test_every_page.py):

- the document is no wider than the window (a wide table scrolls inside its own box instead);
- no text is squeezed into a column a few characters wide (the contact timeline once wrapped
  every character onto its own line, making a page 50,000 px tall);
- no table cell, list entry or field value is narrower than a couple of characters;
- the page is not absurdly tall for what it shows, nor many times taller on a phone than on a
  desktop;
- on a phone, the navigation does not take the first screen: the page's own content starts
  near the top;
- on a desktop, nothing scrolls sideways inside the page either (the activity log once did).
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, ViewportSize

from tests.browser.conftest import VIEWPORT

PHONE: ViewportSize = {"width": 390, "height": 844}
# From this width on, the admin shows its desktop layout (the sidebar; see admin.css).
DESKTOP_MIN_WIDTH = 1001
# Text of at least this many characters is checked for squeezing...
SQUEEZE_MIN_CHARACTERS = 8
# ...and fails when it averages fewer characters than this a line, over more than one line.
SQUEEZE_CHARACTERS_PER_LINE = 4
# A cell or entry holding text is at least this wide inside its padding (about two characters).
MIN_TEXT_BOX_PX = 16
# On a phone, the page's <main> starts within this share of the first screen.
MAX_NAVIGATION_SHARE = 0.25
# No admin page is taller than this, whatever its data: pages hold at most a few hundred rows.
MAX_PAGE_HEIGHT_PX = 25_000
# Stacked columns make a page taller on a phone, but not by more than this.
MAX_PHONE_HEIGHT_RATIO = 4

_MEASURE = """
({minCharacters, perLine, minBox}) => {
  const squeezed = [];
  const range = document.createRange();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.replace(/\\s+/g, " ").trim();
    if (text.length < minCharacters) continue;
    range.selectNodeContents(node);
    const lines = new Set();
    for (const rect of range.getClientRects()) {
      if (rect.width > 0 && rect.height > 0) lines.add(Math.round(rect.top));
    }
    if (lines.size > 1 && text.length / lines.size < perLine) {
      squeezed.push(`"${text.slice(0, 40)}" on ${lines.size} lines`);
    }
  }
  const narrow = [];
  for (const box of document.querySelectorAll("main td, main th, main li, main dd, main dt")) {
    const text = box.textContent.trim();
    const rect = box.getBoundingClientRect();
    if (text.length < 4 || rect.width === 0) continue;
    const style = getComputedStyle(box);
    const inner = rect.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (inner < minBox) {
      const name = box.tagName.toLowerCase();
      narrow.push(`<${name}> "${text.slice(0, 30)}" is ${Math.round(inner)} px wide`);
    }
  }
  // Boxes that scroll or cut their content sideways (not the one-line values cut with "…").
  const scrolling = [];
  for (const box of document.querySelectorAll("main *")) {
    const style = getComputedStyle(box);
    if (!["auto", "scroll", "hidden"].includes(style.overflowX)) continue;
    if (style.textOverflow === "ellipsis" || box.scrollWidth <= box.clientWidth + 1) continue;
    const card = box.closest(".card");
    const heading = card ? card.querySelector("h2, th") : null;
    const label = heading ? heading.textContent.trim().slice(0, 30) : box.className;
    scrolling.push(`<${box.tagName.toLowerCase()}> in "${label}" scrolls sideways`);
  }
  const main = document.querySelector("main");
  return {
    width: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight,
    mainTop: main ? main.getBoundingClientRect().top + window.scrollY : 0,
    squeezed: squeezed.slice(0, 5),
    narrow: narrow.slice(0, 5),
    scrolling: scrolling.slice(0, 5),
  };
}
"""


def measure(page: Page) -> dict[str, Any]:
    """The page's size, where its <main> starts, its squeezed text, too narrow boxes and cards
    that scroll sideways."""
    found: dict[str, Any] = page.evaluate(
        _MEASURE,
        {
            "minCharacters": SQUEEZE_MIN_CHARACTERS,
            "perLine": SQUEEZE_CHARACTERS_PER_LINE,
            "minBox": MIN_TEXT_BOX_PX,
        },
    )
    return found


def phone_and_desktop_problems(page: Page) -> list[str]:
    """What is wrong with the current page's layout on a phone and on a desktop (see the module
    docstring); the window is left at the desktop's size."""
    problems, phone_height = layout_problems(page, PHONE)
    desktop_problems, desktop_height = layout_problems(page, VIEWPORT)
    problems += desktop_problems
    if phone_height > MAX_PHONE_HEIGHT_RATIO * desktop_height:
        problems.append(
            f"{page.url} is {phone_height} px tall on a phone, {desktop_height} px on a desktop"
        )
    return problems


def layout_problems(page: Page, viewport: ViewportSize) -> tuple[list[str], int]:
    """What is wrong with the current page's layout in this window, and the page's height.

    The window is resized to `viewport` first.
    """
    page.set_viewport_size(viewport)
    found = measure(page)
    width = viewport["width"]
    where = f"{page.url} at {width} px"
    problems = []
    if found["width"] > width:
        problems.append(f"{where} is {found['width']} px wide")
    problems += [f"{where}: text squeezed, {text}" for text in found["squeezed"]]
    problems += [f"{where}: {box}" for box in found["narrow"]]
    if found["height"] > MAX_PAGE_HEIGHT_PX:
        problems.append(f"{where} is {found['height']} px tall")
    if width <= PHONE["width"]:
        limit = viewport["height"] * MAX_NAVIGATION_SHARE
        if found["mainTop"] > limit:
            problems.append(f"{where}: the page starts {found['mainTop']:.0f} px down")
    if width >= DESKTOP_MIN_WIDTH:
        problems += [f"{where}: {card}" for card in found["scrolling"]]
    return problems, found["height"]
