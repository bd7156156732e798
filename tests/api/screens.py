"""What a person sees, measured in the browser: text that falls off the side, whether the
Korean text is drawn with a real Korean font, and whether a screenshot holds visible text.
Shared by the browser tests of the demo's screens (tests/api/test_demo_screens.py) and the
Korean-first crawl (tests/api/test_glossary.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.api.cdp import Browser

#: The three sizes of issue 15: a desktop, a tablet held upright, a phone.
SIZES = {"desktop": (1280, 900), "tablet": (800, 1280), "phone": (390, 844)}

#: Visible elements whose box leaves the viewport horizontally, and a page that scrolls
#: sideways. An element inside a container that scrolls horizontally (a wide table in its
#: scroll box) is not off-screen as long as that container is inside the window.
OUTSIDE = """(() => {
  const w = window.innerWidth, out = [];
  const scrolls = (e) => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === "auto" || o === "scroll" || o === "hidden" || o === "clip") {
        const r = a.getBoundingClientRect();
        return r.left >= -1 && r.right <= w + 1;
      }
    }
    return false;
  };
  for (const e of document.querySelectorAll("main *, header *")) {
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    if (!r.width || !r.height || s.visibility === "hidden" || e.closest("[hidden]")) continue;
    if (e.classList.contains("sr-only") || e.closest(".skip")) continue;
    if ((r.left < -1 || r.right > w + 1) && !scrolls(e)) out.push(e.tagName + "." +
      e.className + " " + Math.round(r.left) + ".." + Math.round(r.right) + " of " + w);
  }
  if (document.documentElement.scrollWidth > w + 1) out.push("page scrolls sideways");
  return out.slice(0, 10);
})()"""

#: Share of a PNG's pixels that differ clearly from its most common colour (the background),
#: computed by the browser's own image decoder on the screenshot itself.
_INK = """(async (data) => {
  const blob = await (await fetch("data:image/png;base64," + data)).blob();
  const bitmap = await createImageBitmap(blob);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const px = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const counts = new Map();
  for (let i = 0; i < px.length; i += 4 * 7) {
    const key = (px[i] >> 4) << 8 | (px[i + 1] >> 4) << 4 | (px[i + 2] >> 4);
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  let bg = 0, best = -1;
  for (const [k, n] of counts) if (n > best) { best = n; bg = k; }
  const br = ((bg >> 8) & 15) * 16 + 8, bgg = ((bg >> 4) & 15) * 16 + 8, bb = (bg & 15) * 16 + 8;
  let ink = 0, seen = 0;
  for (let i = 0; i < px.length; i += 4 * 3) {
    seen++;
    if (Math.abs(px[i] - br) + Math.abs(px[i + 1] - bgg) + Math.abs(px[i + 2] - bb) > 120) ink++;
  }
  return ink / seen;
})"""


def outside(b: Browser) -> list[str]:
    found: list[str] = b.evaluate(OUTSIDE)
    return found


def screenshot_ink(b: Browser, path: Path, full_page: bool = False) -> float:
    """Take the screenshot to ``path`` and return the share of its pixels that are ink."""
    b.screenshot(path, full_page=full_page)
    data = base64.b64encode(path.read_bytes()).decode()
    share: float = b.evaluate(f"{_INK}({data!r})")
    return share


def korean_font(b: Browser, selector: str = "main h1") -> list[str]:
    """The platform fonts that drew the text of the first element matching ``selector``
    (Chromium's own account: Korean drawn as empty boxes has no Korean font here)."""
    b.send("DOM.enable")
    b.send("CSS.enable")
    root = b.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    node = b.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    if not node:
        return []
    fonts: list[dict[str, Any]] = b.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return [f["familyName"] for f in fonts if f.get("glyphCount")]
