// Backlog order: the service master drags a story to its new place. The server checks
// that nobody moved it meanwhile (the rank the page showed); if someone did, the list is
// reloaded as it is now instead of guessing.
(function () {
  "use strict";
  const csrf = (JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"]) || "";

  function say(text, kind) {
    const messages = document.getElementById("messages");
    if (!messages) return;
    const line = document.createElement("p");
    line.className = "message " + kind;
    line.textContent = text;
    messages.replaceChildren(line);
  }

  async function reload() {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("backlog-list");
    const here = document.getElementById("backlog-list");
    if (!fresh || !here) return;
    here.innerHTML = fresh.innerHTML;
    if (window.htmx) window.htmx.process(here);
    orderable();
  }

  async function dropped(event) {
    if (event.oldIndex === event.newIndex) return;
    const list = event.to;
    const item = event.item;
    const before = item.previousElementSibling;
    const body = new FormData();
    body.set("key", item.dataset.key);
    body.set("after", before ? before.dataset.key : "");
    body.set("expected_rank", item.dataset.rank);
    list.setAttribute("aria-busy", "true");
    let response = null;
    let answer = {};
    try {
      response = await fetch(list.dataset.reorderUrl, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      });
      answer = await response.json();
    } catch (failure) {
      answer = { error: { message: "The new order did not reach Obeya: check the connection and try again." } };
    }
    await reload().catch(function () {});
    const key = item.dataset.key;
    if (response && response.ok) {
      // Told from the reloaded list: where the story is now, not where it was dropped.
      const row = document.getElementById("story-" + key);
      const above = row && row.previousElementSibling;
      say(key + (above ? " is now after " + above.dataset.key : " is now first in the backlog") + ".", "success");
    } else if (response && response.status === 409) {
      say("Someone else moved it, reloaded: " + key + " had moved meanwhile, so the list now shows the order as it is. Drag again if it still belongs elsewhere.", "error");
    } else {
      say((answer.error && answer.error.message) || "The new order was refused.", "error");
    }
  }

  function orderable() {
    const list = document.getElementById("story-list");
    if (!list || !window.Sortable || list.dataset.canOrder !== "true" || Sortable.get(list)) return;
    Sortable.create(list, {
      handle: ".drag-handle",
      draggable: ".story-row",
      forceFallback: true,
      animation: 150,
      ghostClass: "drag-ghost",
      onEnd: dropped,
    });
  }

  orderable();
  // The list is swapped in place after a new story (htmx): make the new one draggable too.
  document.addEventListener("htmx:load", orderable);
  document.addEventListener("htmx:afterSettle", orderable);
})();
