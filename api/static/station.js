/* The station screen (issue 15.1): results appear by themselves, the screen clears after a short
   idle, and an on-screen number pad types the card on a touch kiosk. The page works without it. */
(() => {
  "use strict";
  const POLL_MS = 2500;
  let lastTouch = Date.now();

  function kiosk() { return document.getElementById("kiosk"); }

  function wirePad() {
    const pad = document.querySelector(".keypad"), field = document.getElementById("card_number");
    if (!pad || !field) return;
    pad.hidden = false;
    pad.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      const key = button && button.dataset.key;
      if (!key) return;
      if (key === "clear") field.value = "";
      else if (key === "back") field.value = field.value.slice(0, -1);
      else if (field.value.length < 40) field.value += key;
      field.focus();
    });
  }

  function typing() {
    const field = document.getElementById("card_number");
    return field !== null && field.value !== "";
  }

  function swap(html) {
    const next = new DOMParser().parseFromString(html, "text/html").getElementById("kiosk");
    const here = kiosk();
    if (!next || !here || next.dataset.state === here.dataset.state) return;
    // Never wipe digits a resident is typing on the welcome screen.
    if (next.dataset.state === "welcome" && here.dataset.state === "welcome" && typing()) return;
    here.replaceWith(next);
    lastTouch = Date.now();
    wirePad();
    const field = document.getElementById("card_number");
    if (field) field.focus();
  }

  async function poll() {
    try {
      const response = await fetch("/station", {credentials: "same-origin", cache: "no-store"});
      if (response.redirected || !response.ok) {
        if (response.redirected) location.assign(response.url);
        return;
      }
      swap(await response.text());
    } catch (err) {
      /* the network came and went: try again at the next tick */
    }
  }

  function idle() {
    const here = kiosk();
    if (!here) return;
    const limit = Number(here.dataset.idle || "90") * 1000;
    if (Date.now() - lastTouch < limit) return;
    const finish = here.querySelector("form.finish");
    if (finish) { finish.submit(); return; }
    // The welcome screen: forget half-typed digits and any message about them.
    if (typing() || here.querySelector(".alert")) location.replace("/station");
    lastTouch = Date.now();
  }

  for (const kind of ["pointerdown", "keydown"]) {
    document.addEventListener(kind, () => { lastTouch = Date.now(); }, {capture: true});
  }
  // Staff reveal the kiosk's sign-out by pressing the centre's name for three seconds.
  let pressed = null;
  document.addEventListener("pointerdown", (event) => {
    if (!event.target.closest(".place")) return;
    pressed = setTimeout(() => {
      const exit = document.querySelector(".staff-exit");
      if (exit) exit.hidden = false;
    }, 3000);
  });
  document.addEventListener("pointerup", () => { clearTimeout(pressed); });
  document.addEventListener("DOMContentLoaded", () => {
    wirePad();
    setInterval(poll, POLL_MS);
    setInterval(idle, 1000);
  });
})();
