// Idle logout on a shared kiosk: the server ends a session after KIOSK_IDLE_SECONDS
// without a request; this shows the time left and then returns to the login page.
"use strict";

(function () {
  const seconds = Number(document.body.dataset.idleSeconds);
  const out = document.querySelector("[data-idle-countdown]");
  const warning = document.querySelector("[data-idle-warning]");
  if (!seconds || !out) return;
  const SOON = 20; // seconds: the countdown turns red, and a screen reader hears it once
  let warned = false;
  // One second more than the server's limit, so the session has surely ended on arrival.
  const deadline = Date.now() + (seconds + 1) * 1000;

  function tick() {
    const left = Math.min(seconds, Math.max(0, Math.ceil((deadline - Date.now()) / 1000)));
    const minutes = Math.floor(left / 60);
    const rest = String(left % 60).padStart(2, "0");
    out.textContent = "Logging out in " + minutes + ":" + rest;
    out.classList.toggle("soon", left <= SOON);
    if (left <= SOON && !warned && warning) {
      warned = true; // once: a live region that changed every second would talk over everything else
      warning.textContent = "You will be logged out in " + left + (left === 1 ? " second." : " seconds.");
    }
    if (Date.now() >= deadline) {
      clearInterval(timer);
      window.location.assign(document.body.dataset.idleUrl);
    }
  }

  const timer = setInterval(tick, 250);
  tick();
})();
