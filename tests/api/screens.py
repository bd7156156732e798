"""What a person sees, measured in the browser: text that falls off the side, whether the
Korean text is drawn with a real Korean font, and whether a screenshot holds visible text.
Shared by the browser tests of the demo's screens (tests/api/test_demo_screens.py) and the
Korean-first crawl (tests/api/test_korean_first.py, whose docstring explains the judge: CHUNKS
collects a page's text, ``problem`` says what is not Korean first)."""

from __future__ import annotations

import base64
import re
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


HANGUL = re.compile(r"[\uac00-\ud7a3]")

#: Every text chunk of the page with what judging it needs: the text, where it is, whether it
#: is an attribute, and whether its element is smaller than its text block with Korean before.
CHUNKS = r"""(() => {
  const HANGUL = /[\uac00-\ud7a3]/;
  const size = (e) => parseFloat(getComputedStyle(e).fontSize) || 0;
  const where = (e) => {
    const parts = [];
    for (let a = e; a && a !== document.body && parts.length < 4; a = a.parentElement) {
      let s = a.tagName.toLowerCase();
      if (a.id) s += "#" + a.id;
      else if (a.classList.length) s += "." + [...a.classList].join(".");
      parts.unshift(s);
    }
    return parts.join(" > ");
  };
  const exempt = (e) => !!e.closest("code, kbd, samp, [translate=no], script, style, noscript");
  // the text block: the nearest ancestor that is not inline (phrasing elements count as inline
  // even when a flex or grid parent draws them as blocks, like a heading's badge and English)
  const INLINE = /^(SPAN|SMALL|B|STRONG|EM|I|A|ABBR|SUB|SUP|TIME|MARK|BDI|Q|S|U|BR)$/;
  const block = (e) => {
    let a = e;
    while (a.parentElement && a !== document.body) {
      const d = getComputedStyle(a).display;
      if (d !== "inline" && d !== "contents" && !INLINE.test(a.tagName)) break;
      a = a.parentElement;
    }
    return a;
  };
  const out = [];
  const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const e = n.parentElement;
    const text = n.data.replace(/\s+/g, " ").trim();
    if (!e || !text || exempt(e)) continue;
    // secondary: the last Korean text before it in its block is drawn larger
    const b = block(e);
    let korean = null;
    const inBlock = document.createTreeWalker(b, NodeFilter.SHOW_TEXT);
    for (let m = inBlock.nextNode(); m && m !== n; m = inBlock.nextNode()) {
      if (HANGUL.test(m.data) && m.parentElement && !exempt(m.parentElement)) korean = m;
    }
    const secondary = korean !== null && size(e) < size(korean.parentElement) - 0.1;
    out.push({text, where: where(e), attr: "", secondary});
  }
  const attrs = ["title", "aria-label", "placeholder", "alt"];
  for (const e of document.querySelectorAll(attrs.map(a => "[" + a + "]").join(","))) {
    if (exempt(e)) continue;
    for (const a of attrs) {
      const text = (e.getAttribute(a) || "").replace(/\s+/g, " ").trim();
      if (text) out.push({text, where: where(e), attr: a, secondary: false});
    }
  }
  return out;
})()"""

#: Tokens that are the same in Korean writing: units and the acronyms used as they are.
NEUTRAL_WORDS = frozenset(
    re.findall(
        r"\S+",
        """mmHg mg dL mg/dL kg cm mmol mmol/L kg/m² kg/m2 bpm kJ kcal ml mL mm km m/s
        BMI HbA1c PHQ-9 PHQ CIST FHIR DXA ASMI BLE MQTT SMS CSV ID WHO KSH ADA KDA KSSO AWGS
        TG HDL LDL SPPB T-score U-건강센터 SSE API URL JSON R4 UTF-8 EMR""",
    )
)
#: Ids of residents, staff, stations' accounts, cards, times: data, not language.
IDENTIFIER = re.compile(
    r"^(?:[A-Z]\d+(?:-\d+)*|[a-z]\d+(?:-\d+)*|[0-9a-f]{8}-[0-9a-f-]{27,}|#?\d[\d.,:/\-~+]*"
    r"|v?\d+(?:\.\d+)+|[A-Z]{1,2})$"
)
#: Rule ids (BP-CRISIS, Q-04, A1C-DM-RANGE) and FHIR codes (85354-9, daon-grip).
CODE = re.compile(r"^(?:[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+|\d{3,6}-\d|daon-[a-z-]+)$")
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9²_.\-/:'’\[\]]*")


def foreign(text: str) -> list[str]:
    """The English words, rule ids and codes of ``text``, in order (neutral tokens left out)."""
    found = []
    for raw in TOKEN.findall(text):
        token = raw.rstrip(".:/-'’")
        if not token or token in NEUTRAL_WORDS:
            continue
        if CODE.match(token):
            found.append(token)
        elif IDENTIFIER.match(token):
            continue
        elif len(re.findall(r"[A-Za-z]", token)) >= 2:
            found.append(token)
    return found


def problem(chunk: dict[str, Any]) -> str | None:
    """Why this chunk of user-facing text is not Korean first, or None."""
    text: str = chunk["text"]
    korean = HANGUL.search(text)
    if korean is not None:
        ahead = foreign(text[: korean.start()])
        if ahead:
            return f"English before Korean ({' '.join(ahead)})"
        inside = foreign(text.split(" / ")[0]) if " / " in text else []
        return f"English in the Korean part ({' '.join(inside)})" if inside else None
    words = foreign(text)
    if not words:
        return None
    if chunk["secondary"]:
        return None
    if chunk["attr"]:
        return f"attribute {chunk['attr']} without Korean"
    return "no Korean before it, or not smaller than its Korean"
