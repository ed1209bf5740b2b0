// The camera view of the kiosk pages: asks the server a few times a second what the camera
// sees (/camera/look: the login's own check), draws the face box in the guide oval, keeps one
// status line, and on the login page with hands-free on starts the face login by itself once
// one face has held still, large enough, inside the oval for about half a second.
// After a refusal it waits for the face to leave, or a few seconds (longer each time), so that
// a stranger standing there never runs into the lockout. Without JavaScript the button works.
"use strict";

(function () {
  const stage = document.querySelector("[data-stage]");
  if (!stage) return;
  const browserMode = document.body.dataset.cameraMode === "browser";
  const media = stage.querySelector(".camera");
  const svg = stage.querySelector("svg");
  const ovalShape = svg.querySelector("[data-oval]");
  const box = svg.querySelector("[data-face-box]");
  const status = stage.querySelector("[data-status]");
  const form = document.querySelector("[data-face-login]");
  const handsFree = Boolean(form && "handsFree" in form.dataset);
  const [cx, cy, rx, ry] = stage.dataset.oval.split(" ").map(Number);

  const EVERY = 250; // ms between looks
  const STEADY = 500; // ms a face must hold still in the oval
  const GONE = 1000; // ms without a face: the person has left
  const MOVED = 0.05; // a face centre moving more than this (of the frame) is not holding still
  const READ_CHALLENGE = 800; // ms to read the movement asked before the pictures start
  const MEMORY = "kiosk-refusals"; // survives the page a refused server-mode login returns
  const KEEP_ERROR = 6000; // ms an error (a refused photo) stays on the status line

  let steadySince = null;
  let lastFace = null;
  let goneSince = null;
  let starting = false;
  let said = null;
  let frame = { w: 640, h: 480 };
  let errorAt = 0;

  let kept = null; // the same, in case the browser keeps no sessionStorage: then for this page only

  // Refusals in a row with the same face in view, and when the last one was.
  function refusals() {
    try {
      return JSON.parse(sessionStorage.getItem(MEMORY)) || kept || { count: 0, at: 0 };
    } catch {
      return kept || { count: 0, at: 0 };
    }
  }

  function remember(value) {
    kept = value;
    try {
      if (value) sessionStorage.setItem(MEMORY, JSON.stringify(value));
      else sessionStorage.removeItem(MEMORY);
    } catch {
      // No storage: `kept` holds it.
    }
  }

  function refused() {
    const before = refusals();
    remember({ count: before.count + 1, at: Date.now() });
  }

  // The pause after the n-th refusal in a row: 4 s, 8 s, 16 s, then 30 s.
  function pause(count) {
    return count ? Math.min(4000 * 2 ** (count - 1), 30000) : 0;
  }

  function waiting() {
    const r = refusals();
    return r.count > 0 && Date.now() - r.at < pause(r.count);
  }

  function say(text) {
    if (document.querySelector("form.looking")) return; // kiosk.js says what is happening
    if (status.classList.contains("error")) {
      // A refusal stays until the pause is over or the person leaves; any other error a while.
      if (waiting() || Date.now() - errorAt < KEEP_ERROR) return;
      status.classList.remove("error");
      status.setAttribute("role", "status");
    }
    if (text !== said) status.textContent = text;
    said = text;
  }

  function inOval(face) {
    const [left, top, width, height] = face;
    const dx = (left + width / 2 - cx) / rx;
    const dy = (top + height / 2 - cy) / ry;
    return dx * dx + dy * dy <= 1;
  }

  function largeEnough(face) {
    return face[3] >= (2 * ry) / 3; // a third of the oval's height
  }

  function holdsStill(face) {
    if (!lastFace) return false;
    const moved = Math.hypot(
      face[0] + face[2] / 2 - (lastFace[0] + lastFace[2] / 2),
      face[1] + face[3] / 2 - (lastFace[1] + lastFace[3] / 2),
    );
    return moved <= MOVED && Math.abs(face[3] - lastFace[3]) <= MOVED;
  }

  // Fit the overlay to the picture's own size, so the oval and the box sit where the picture is.
  function fitOverlay() {
    const w = browserMode ? media.videoWidth : media.naturalWidth;
    const h = browserMode ? media.videoHeight : media.naturalHeight;
    if (!w || !h || (w === frame.w && h === frame.h)) return;
    frame = { w, h };
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    ovalShape.setAttribute("cx", cx * w);
    ovalShape.setAttribute("cy", cy * h);
    ovalShape.setAttribute("rx", rx * w);
    ovalShape.setAttribute("ry", ry * h);
  }

  function drawBox(face, good) {
    if (!face) {
      box.setAttribute("visibility", "hidden");
      return;
    }
    box.setAttribute("x", face[0] * frame.w);
    box.setAttribute("y", face[1] * frame.h);
    box.setAttribute("width", face[2] * frame.w);
    box.setAttribute("height", face[3] * frame.h);
    box.classList.toggle("ok", good);
    box.setAttribute("visibility", "visible");
  }

  // One JPEG of this browser's camera, at most 640 px wide (MIN_FACE_HEIGHT is meant for such frames).
  function smallFrame() {
    if (!media.videoWidth) return Promise.resolve(null);
    const canvas = document.createElement("canvas");
    canvas.width = Math.min(640, media.videoWidth);
    canvas.height = Math.round((canvas.width * media.videoHeight) / media.videoWidth);
    canvas.getContext("2d").drawImage(media, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
  }

  async function ask() {
    const url = stage.dataset.look;
    if (!browserMode) return fetch(url, { cache: "no-store" });
    const picture = await smallFrame();
    if (!picture) return null;
    const data = new FormData();
    const token = document.querySelector("input[name=csrf_token]");
    if (token) data.append("csrf_token", token.value);
    data.append("frame", picture, "look.jpg");
    return fetch(url, { method: "POST", body: data });
  }

  function start() {
    starting = true;
    const challenge = document.querySelector("[data-challenge] .challenge-text");
    const go = () => {
      starting = false;
      if (!form.classList.contains("looking")) form.requestSubmit();
    };
    if (challenge) {
      // Show the movement first: the pictures start when the person has read it.
      say(`${challenge.textContent.trim()}, then back`);
      setTimeout(go, READ_CHALLENGE);
    } else {
      go();
    }
  }

  // Without hands-free, a face in place is told to press the button (and the movement to make).
  function readyText() {
    if (stage.dataset.ready) return stage.dataset.ready;
    const challenge = document.querySelector("[data-challenge] .challenge-text");
    if (!challenge) return "Ready: press \u201cLog in with my face\u201d";
    const movement = challenge.textContent.trim();
    return `Press the button, then ${movement.charAt(0).toLowerCase()}${movement.slice(1)} and back`;
  }

  // Hands-free waits while someone types, or has the password form open.
  function personIsTyping() {
    const fallback = document.querySelector("details.fallback");
    const typing = document.activeElement && document.activeElement.matches("input, textarea, select");
    return Boolean((fallback && fallback.open) || typing);
  }

  function seen(look) {
    fitOverlay();
    const now = Date.now();
    const faces = look.faces || [];
    const face = faces.length === 1 ? faces[0] : null;
    if (!faces.length) {
      goneSince = goneSince || now;
      if (now - goneSince >= GONE) remember(null); // the person left: the next one starts afresh
    } else {
      goneSince = null;
    }
    const ready = Boolean(face) && !look.problem && inOval(face) && largeEnough(face);
    // No green beside a refusal: while it waits, the oval and the box do not say "ready" either.
    const showReady = ready && !waiting();
    drawBox(face || faces[0], showReady);
    stage.classList.toggle("ready", showReady);
    if (!ready) {
      steadySince = null;
    } else if (!holdsStill(face) || steadySince === null) {
      steadySince = now;
    }
    lastFace = face;
    if (look.problem) say(look.hint);
    else if (!inOval(face)) say("Move your face into the oval");
    else if (!largeEnough(face)) say("Come a little closer");
    else say(handsFree ? "Hold still\u2026" : readyText());
    const busy = starting || (form && form.classList.contains("looking"));
    if (handsFree && ready && !busy && !waiting() && !personIsTyping() && now - steadySince >= STEADY) start();
  }

  async function loop() {
    let next = EVERY;
    if (!document.hidden && !document.querySelector("form.looking")) {
      try {
        const response = await ask();
        if (response && response.status === 403) return; // not a kiosk: nothing to look at
        if (response && response.ok) seen(await response.json());
        else if (response && response.status === 503) next = 2000; // busy: ask less often
      } catch {
        next = 2000; // the server is out of reach for a moment
      }
    }
    setTimeout(loop, next);
  }

  if (form) {
    if ("refused" in form.dataset) refused();
    else remember(null);
    form.addEventListener("kiosk:refused", refused);
  }
  document.addEventListener("kiosk:refused", () => {
    errorAt = Date.now();
  });
  loop();
})();
