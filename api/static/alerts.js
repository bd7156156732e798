/* Live alerts on every staff page (issue 11.3a): Server-Sent Events from /alerts/stream.
 * - "alerts": the alerts waiting for this user; one card each with the resident's name and phone,
 *   what to do, Acknowledge right there, and an optional sound for a new one.
 * - "count": open critical flags in scope, shown in the navigation.
 * - "changed": flags changed; parts of the page marked data-live reload themselves, one fetch
 *   at a time, at most once every REFRESH_GAP_MS (the first change at once) and never more
 *   often than four times as long as the last fetch took. The cards and the count are pushed
 *   at once; the sections follow. Under load the runner commits several batches a second, and
 *   reloading the page for each (every 2 s at best) was a load of its own on the server and
 *   the browser, whose main thread then held the next card back while it parsed the page:
 *   bench/alerts.py measured the card's p99 at 4.6 s with it and 0.7 s without it on the same
 *   loaded machine; reloading again 2 s after each new alert still gave 2.5 s.
 * - "renew": this stream ends soon: the next one opens now and replaces it once its first
 *   look is in (its first "alerts"), so the page always has a stream ("reconnect": it ends
 *   now, if the next has not replaced it yet).
 * The page works without this script (forms and reloads); it only adds the push. */
(() => {
  "use strict";
  const body = document.body;
  if (!body.dataset.alerts || !window.EventSource) return;
  const csrf = body.dataset.csrf || "";
  const box = document.getElementById("alert-box");
  const badge = document.getElementById("crit-count");
  const badgeItem = document.getElementById("crit-item");
  const soundBox = document.getElementById("alert-sound");
  const seen = new Map(); // flag id -> newest event id shown
  let source = null;
  let retry = 1000;
  let refreshTimer = null;
  let refreshing = false;
  let lastRefresh = 0;
  let lastCost = 0;
  let refreshDue = 0;
  const REFRESH_GAP_MS = 15000;

  if (soundBox) {
    soundBox.checked = localStorage.getItem("daon-alert-sound") === "on";
    soundBox.addEventListener("change", () => {
      localStorage.setItem("daon-alert-sound", soundBox.checked ? "on" : "off");
    });
  }

  function beep() {
    if (!soundBox || !soundBox.checked) return;
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.4);
      osc.onended = () => ctx.close();
    } catch (e) { /* no audio: the card is still there */ }
  }

  function text(tag, cls, value) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function card(a) {
    const el = document.createElement("article");
    el.className = "alert-card sev-" + a.severity;
    el.dataset.flag = String(a.flag);
    el.setAttribute("role", "alert");
    el.appendChild(text("p", "alert-notice", a.notice));
    const who = document.createElement("p");
    who.className = "alert-who";
    const link = document.createElement("a");
    link.href = a.link;
    link.textContent = a.name;
    who.appendChild(link);
    if (a.phone) {
      who.appendChild(document.createTextNode(" · "));
      const tel = document.createElement("a");
      tel.href = "tel:" + a.phone;
      tel.className = "alert-phone";
      tel.textContent = "☎ " + a.phone;
      who.appendChild(tel);
    }
    el.appendChild(who);
    el.appendChild(text("p", "alert-text", a.text));
    const row = document.createElement("div");
    row.className = "row";
    if (a.ack) {
      const ack = text("button", "primary alert-ack", "확인 / Acknowledge");
      ack.type = "button";
      ack.addEventListener("click", () => acknowledge(a.flag, el, ack));
      row.appendChild(ack);
    }
    const hide = text("button", "link", "닫기 / Hide");
    hide.type = "button";
    hide.addEventListener("click", () => el.remove());
    row.appendChild(hide);
    el.appendChild(row);
    return el;
  }

  async function acknowledge(flag, el, button) {
    button.disabled = true;
    const form = new FormData();
    form.append("csrf_token", csrf);
    form.append("next", "/worklist");
    try {
      const r = await fetch("/flags/" + flag + "/acknowledge", {
        method: "POST", body: form, credentials: "same-origin", redirect: "manual",
      });
      if (r.type === "opaqueredirect" || r.ok) {
        el.classList.add("done");
        el.querySelector(".alert-notice").textContent = "확인했습니다 / Acknowledged";
        button.remove();
        return;
      }
    } catch (e) { /* shown below */ }
    button.disabled = false;
    el.querySelector(".alert-notice").textContent = "확인하지 못했습니다. 다시 눌러 주세요 / Could not acknowledge, try again";
  }

  function showAlerts(list) {
    if (!box) return;
    const now = new Set(list.map((a) => String(a.flag)));
    for (const el of Array.from(box.querySelectorAll(".alert-card"))) {
      if (!now.has(el.dataset.flag) && !el.classList.contains("done")) el.remove();
    }
    let fresh = false;
    for (const a of list) {
      const key = String(a.flag);
      const old = box.querySelector('.alert-card[data-flag="' + key + '"]');
      if (seen.get(key) === a.event && old) continue;
      if (!seen.has(key) || seen.get(key) < a.event) fresh = true;
      seen.set(key, a.event);
      const el = card(a);
      if (old) old.replaceWith(el); else box.prepend(el);
    }
    if (fresh) beep();
  }

  function showCount(n) {
    if (!badge || n === null || n === undefined) return;
    badge.textContent = String(n);
    if (badgeItem) badgeItem.hidden = false;
    badge.classList.toggle("zero", n === 0);
  }

  function busy(root) {
    const active = document.activeElement;
    const typing = active && root.contains(active) &&
      ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName);
    return typing || root.querySelector("details[open]") !== null;
  }

  function scheduleRefresh() {
    const gap = Math.max(REFRESH_GAP_MS, 4 * lastCost);
    const due = Math.max(Date.now() + 150, lastRefresh + gap);
    if (refreshTimer !== null) {
      if (due >= refreshDue) return; // one is due as soon: it fetches the newest state
      clearTimeout(refreshTimer);
    }
    refreshDue = due;
    refreshTimer = setTimeout(() => { refreshTimer = null; refreshLive(); }, due - Date.now());
  }

  async function refreshLive() {
    const parts = document.querySelectorAll("[data-live][id]");
    if (!parts.length) return;
    if (refreshing) { scheduleRefresh(); return; }
    if (Array.from(parts).some(busy)) { // never pull a form from under someone typing
      lastRefresh = Math.max(lastRefresh, Date.now() + 3000 - REFRESH_GAP_MS); // again in 3 s
      scheduleRefresh();
      return;
    }
    refreshing = true;
    lastRefresh = Date.now();
    try {
      const r = await fetch(location.href, { credentials: "same-origin" });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      for (const part of parts) {
        const next = doc.getElementById(part.id);
        if (next) part.replaceWith(document.adoptNode(next));
      }
      document.dispatchEvent(new CustomEvent("daon:live-updated"));
    } catch (e) { /* the next change tries again */ } finally {
      refreshing = false;
      lastCost = Date.now() - lastRefresh;
    }
  }

  function connect() {
    const es = new EventSource("/alerts/stream");
    es.addEventListener("alerts", (e) => {
      // its first look is in: this stream replaces the one before it
      if (source !== es) {
        if (source) source.close();
        source = es;
      }
      retry = 1000;
      showAlerts(JSON.parse(e.data));
    });
    es.addEventListener("count", (e) => showCount(JSON.parse(e.data).critical));
    es.addEventListener("changed", () => scheduleRefresh());
    es.addEventListener("renew", () => { if (source === es) connect(); });
    es.addEventListener("reconnect", () => {
      es.close();
      if (source === es) { source = null; connect(); }
    });
    es.addEventListener("error", () => {
      // refused (503, signed out): back off; a replacement that failed leaves the current one
      if (es.readyState === EventSource.CLOSED && (source === es || source === null)) {
        if (source === es) source = null;
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 30000);
      }
    });
  }

  window.addEventListener("pagehide", () => { if (source) source.close(); });
  connect();
})();
