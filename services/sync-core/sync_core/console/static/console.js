// The console's few live parts, without third-party code (CSP: script-src 'self').
// - [data-refresh-url]: the element's content is fetched again every data-refresh-ms
//   (the server answers an HTML fragment when asked with the X-Fragment header);
//   data-refresh-paused="true" waits for a [data-toggle-refresh] checkbox;
//   data-refresh-until-attr stops once a descendant carries that attribute set to "true".
// - form[data-confirm]: asks before submitting.
"use strict";

function refresher(el) {
  const url = el.dataset.refreshUrl;
  const every = parseInt(el.dataset.refreshMs || "2000", 10);
  const until = el.dataset.refreshUntilAttr;
  let timer = null;
  async function tick() {
    try {
      const resp = await fetch(url, { headers: { "X-Fragment": "1" }, credentials: "same-origin" });
      if (resp.status === 401) { window.location.reload(); return; }
      if (resp.ok) { el.innerHTML = await resp.text(); }
    } catch (e) { /* the next tick tries again */ }
    if (until && el.querySelector("[" + until + "='true']")) { stop(); }
  }
  function start() { if (!timer) { timer = setInterval(tick, every); } }
  function stop() { if (timer) { clearInterval(timer); timer = null; } }
  if (until && el.querySelector("[" + until + "='true']")) { return { start, stop }; }
  if (el.dataset.refreshPaused !== "true") { start(); }
  return { start, stop };
}

document.addEventListener("DOMContentLoaded", () => {
  const live = {};
  document.querySelectorAll("[data-refresh-url]").forEach((el) => { live[el.id] = refresher(el); });
  document.querySelectorAll("[data-toggle-refresh]").forEach((box) => {
    box.addEventListener("change", () => {
      const r = live[box.dataset.toggleRefresh];
      if (r) { box.checked ? r.start() : r.stop(); }
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
});
