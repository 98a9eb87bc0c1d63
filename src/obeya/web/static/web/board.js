// Board: drag a card to another column (or use its "Move to…" form). The server decides —
// WIP limits, definitions of done, gates — and the board is redrawn from its answer, so a
// refused card goes back where it was. A full column asks for a reason and tries again.
(function () {
  "use strict";
  const board = document.getElementById("board");
  if (!board) return;
  const base = board.dataset.boardUrl;
  const csrf = (JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"]) || "";
  const dialog = document.getElementById("override-dialog");
  let pending = null;

  function say(text, kind) {
    const messages = document.getElementById("messages");
    if (!messages || !text) return;
    const line = document.createElement("p");
    line.className = "message " + kind;
    line.textContent = text;
    messages.replaceChildren(line);
  }

  function draggable() {
    if (!window.Sortable) return;
    board.querySelectorAll("[data-cards]").forEach(function (list) {
      if (Sortable.get(list)) return;
      Sortable.create(list, {
        group: "board",
        handle: ".drag-handle",
        draggable: ".board-card",
        forceFallback: true, // mouse, touch and pen alike; no native drag image
        fallbackOnBody: true,
        animation: 150,
        ghostClass: "drag-ghost",
        onEnd: function (event) {
          if (event.from === event.to && event.oldIndex === event.newIndex) return;
          move({ key: event.item.dataset.key, column: event.to.dataset.column, position: event.newIndex });
        },
      });
    });
  }

  async function redraw() {
    const response = await fetch(base, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("board");
    if (!fresh) return;
    board.innerHTML = fresh.innerHTML;
    if (window.htmx) window.htmx.process(board);
    draggable();
  }

  function refuse(key, message) {
    const card = document.getElementById("card-" + key);
    if (!card) return say(message, "error");
    card.classList.add("refused");
    card.querySelector("[data-refusal]").textContent = message;
    card.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  async function move(step) {
    const body = new FormData();
    body.set("column", step.column);
    if (step.position !== undefined) body.set("position", String(step.position));
    if (step.reason !== undefined) body.set("override_reason", step.reason);
    board.setAttribute("aria-busy", "true");
    let response = null;
    let answer = {};
    try {
      response = await fetch(base + encodeURIComponent(step.key) + "/move/", {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      });
      answer = await response.json();
    } catch (failure) {
      answer = { error: { message: "The move did not reach Obeya: check the connection and try again." } };
    }
    await redraw().catch(function () {});
    board.removeAttribute("aria-busy");
    if (response && response.ok) return say(answer.message, "success");
    const error = answer.error || {};
    if (error.code === "wip_limit") return askReason(step, error.message);
    refuse(step.key, error.message || "The move was refused.");
  }

  function askReason(step, message) {
    if (!dialog) return refuse(step.key, message);
    pending = step;
    dialog.querySelector("[data-wip-message]").textContent = message;
    dialog.querySelector("[data-override-key]").textContent = step.key;
    dialog.querySelector("[data-reason-error]").hidden = true;
    const reason = dialog.querySelector("textarea");
    reason.value = "";
    dialog.showModal();
    reason.focus();
  }

  if (dialog) {
    dialog.querySelector("form").addEventListener("submit", function (event) {
      event.preventDefault();
      const reason = dialog.querySelector("textarea").value.trim();
      if (!reason) {
        dialog.querySelector("[data-reason-error]").hidden = false;
        dialog.querySelector("textarea").focus();
        return;
      }
      dialog.close();
      const step = pending;
      pending = null;
      if (step) move(Object.assign({}, step, { reason: reason }));
    });
    dialog.querySelector("[data-cancel]").addEventListener("click", function () {
      pending = null;
      dialog.close();
    });
  }

  // The per-card forms take the same road as a drag, so refusals look the same.
  board.addEventListener("submit", function (event) {
    const form = event.target.closest(".move-form");
    if (!form) return;
    event.preventDefault();
    const step = { key: form.dataset.key, column: form.elements.column.value };
    if (form.elements.override_reason) step.reason = form.elements.override_reason.value;
    move(step);
  });

  draggable();
})();
