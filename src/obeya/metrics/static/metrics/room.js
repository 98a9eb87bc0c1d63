// The Obeya room stays live: /room/events says when anything was recorded (server-sent
// events), and the panels are fetched again from /room/?partial=1. The connection state and
// the time of the last refresh are shown in words. Without JavaScript the page is still
// whole; it is only not live.
(function () {
  "use strict";
  const room = document.querySelector("[data-room]");
  if (!room || !window.EventSource) return;
  const panels = document.getElementById("room-panels");
  const connection = room.querySelector("[data-room-connection]");
  const updated = room.querySelector("[data-room-updated]");
  const SLOW_REFRESH_MS = 60000; // error budgets and windows move without events
  let version = current();
  let busy = false;
  let again = false;

  function current() {
    const grid = panels.querySelector("[data-version]");
    return grid ? grid.dataset.version : "";
  }

  function state(name, words) {
    connection.className = "connection connection-" + name;
    connection.textContent = words;
  }

  function stamp() {
    const now = new Date();
    updated.dateTime = now.toISOString();
    updated.textContent = now.toLocaleTimeString("en-GB", { hour12: false });
  }

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(room.dataset.partial, { credentials: "same-origin" });
      if (response.redirected) throw new Error("signed out: sign in again and reload");
      if (!response.ok) throw new Error("the server answered " + response.status);
      panels.innerHTML = await response.text();
      version = current();
      stamp();
    } catch (error) {
      state("error", "⚠ not refreshed: " + error.message);
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }

  const source = new EventSource(room.dataset.events);
  source.addEventListener("open", function () { state("live", "● live"); });
  source.addEventListener("version", function (event) {
    state("live", "● live");
    const seen = String(JSON.parse(event.data).version);
    if (seen !== version) refresh();
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) state("offline", "✗ offline: reload the page");
    else state("reconnecting", "◌ reconnecting…");
  });
  window.setInterval(refresh, SLOW_REFRESH_MS);
})();
