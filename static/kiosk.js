// The kiosk pages without inline scripts: a "looking..." state for face login and,
// with CAMERA_MODE=browser, the camera of this browser (getUserMedia) as the kiosk
// camera. Without JavaScript the forms still post as usual.
"use strict";

(function () {
  const browserMode = document.body.dataset.cameraMode === "browser";
  const video = document.querySelector("[data-camera-video]");
  let cameraReady = null;

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // Start this browser's camera in the page's <video>; resolves once it shows pictures.
  function startCamera() {
    if (!cameraReady) {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        cameraReady = Promise.reject(new Error("no camera API (the page needs https or localhost)"));
      } else {
        cameraReady = navigator.mediaDevices
          .getUserMedia({ video: { width: 640, height: 480, facingMode: "user" }, audio: false })
          .then(async (stream) => {
            video.srcObject = stream;
            video.hidden = false;
            await video.play();
            while (!video.videoWidth) await sleep(50);
          });
      }
      cameraReady.catch(() => {});
    }
    return cameraReady;
  }

  // One JPEG of what the camera shows now.
  function grab() {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  }

  // A refused attempt used up its challenge: take the new one (and its nonce) from the answer.
  function takeNewChallenge(page) {
    const fresh = page.querySelector("[data-challenge]");
    const shown = document.querySelector("[data-challenge]");
    if (fresh && shown) shown.replaceWith(document.importNode(fresh, true));
    const nonce = page.querySelector("input[name=nonce]");
    const mine = document.querySelector("input[name=nonce]");
    if (nonce && mine) mine.value = nonce.value;
    const form = page.querySelector("[data-face-login]");
    const login = document.querySelector("[data-face-login]");
    if (form && login && form.dataset.busy) login.dataset.busy = form.dataset.busy;
  }

  // The message of a refused request: the page's alert line, or the status.
  async function messageOf(response) {
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    takeNewChallenge(page);
    const alert = page.querySelector("[role=alert]");
    return alert ? alert.textContent.trim() : "Something went wrong (" + response.status + ") - try again";
  }

  // The form's status line: in the form, or over the camera view (stage.js keeps it).
  function statusOf(form) {
    return form.querySelector("[data-status]") || document.querySelector("[data-stage] [data-status]");
  }

  function setBusy(form, busy, text) {
    const button = form.querySelector("button[type=submit]");
    const status = statusOf(form);
    if (!button.dataset.label) button.dataset.label = button.textContent;
    form.classList.toggle("looking", busy);
    form.setAttribute("aria-busy", busy ? "true" : "false");
    button.disabled = busy;
    button.textContent = busy ? "Looking\u2026" : button.dataset.label;
    if (text !== undefined) status.textContent = text;
  }

  function showError(form, message) {
    const status = statusOf(form);
    setBusy(form, false, message);
    status.classList.add("error");
    status.setAttribute("role", "alert");
    form.dispatchEvent(new CustomEvent("kiosk:refused", { bubbles: true })); // stage.js keeps it, and waits
  }

  // Post the form with camera frames attached; follow a redirect, else show the refusal.
  async function postWithFrames(form, count, gap) {
    const data = new FormData(form);
    for (let i = 0; i < count; i++) {
      if (i) await sleep(gap);
      data.append("frame", await grab(), "frame" + i + ".jpg");
    }
    const response = await fetch(form.action, { method: "POST", body: data });
    if (response.redirected && response.ok) {
      window.location.assign(response.url);
      return;
    }
    showError(form, await messageOf(response));
  }

  // gap: ms between frames; a blink or a head movement (LIVENESS) needs a quick, long burst.
  function handle(form, count, busyText, gap = 120) {
    form.addEventListener("submit", (event) => {
      if (form.classList.contains("looking")) {
        event.preventDefault();  // one burst at a time
        return;
      }
      const status = statusOf(form);
      status.classList.remove("error");
      status.setAttribute("role", "status");
      setBusy(form, true, form.dataset.busy || busyText);
      if (!browserMode) return;  // the plain POST goes on; the page shows "looking" until it answers
      event.preventDefault();
      startCamera()
        .then(() => postWithFrames(form, count, gap))
        .catch(() => showError(form, "The camera of this kiosk is not available - use the password or a photo file instead"));
    });
  }

  const login = document.querySelector("[data-face-login]");
  if (login) {
    handle(login, Number(login.dataset.frames), "Looking at you - hold still\u2026", Number(login.dataset.gap));
  }
  const capture = document.querySelector("[data-capture-form]");
  if (capture) handle(capture, 1, "Taking your photo - hold still\u2026");
  if (browserMode && video) {
    startCamera().catch(() => {
      document.querySelectorAll("[data-status]").forEach((status) => {
        status.textContent = "The camera of this kiosk is not available - use the password or a photo file instead";
      });
    });
  }

  // The server ends each live view after STREAM_SECONDS, and refuses one over its limit at
  // once (503): open a new view when one ends, and retry a refused one after a growing pause.
  const preview = document.querySelector("img[data-stream-seconds]");
  if (preview) {
    const lasts = Number(preview.dataset.streamSeconds) * 1000;
    let pause = 2000;
    let timer = null;
    const reopen = () => {
      const url = new URL(preview.src);
      url.searchParams.set("view", Date.now());  // a new URL: the browser makes a new request
      preview.src = url;
      clearTimeout(timer);
      timer = setTimeout(() => {
        pause = 2000;
        reopen();
      }, lasts + 500);
    };
    preview.addEventListener("error", () => {
      clearTimeout(timer);
      timer = setTimeout(reopen, pause);
      pause = Math.min(2 * pause, 60000);
    });
    // Refused before this script ran: the error event has passed already.
    const refused = preview.complete && !preview.naturalWidth;
    timer = setTimeout(reopen, refused ? pause : lasts + 500);
  }

  // Coming back with the Back button shows the page as it was left: not looking any more.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) document.querySelectorAll("form.looking").forEach((form) => setBusy(form, false));
  });
})();
