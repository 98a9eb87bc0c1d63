// Live job log: appends what the server sends over server-sent events, line by line.
(function () {
  "use strict";
  const log = document.querySelector("[data-live-log]");
  if (!log) return;
  let lineCount = log.querySelectorAll(".line").length;
  let open = log.dataset.openLine === "true" ? log.lastElementChild : null;
  const follow = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;

  function newLine() {
    lineCount += 1;
    const line = document.createElement("span");
    line.className = "line";
    line.id = "L" + lineCount;
    const number = document.createElement("a");
    number.className = "ln";
    number.href = "#L" + lineCount;
    number.setAttribute("aria-hidden", "true");
    number.textContent = String(lineCount);
    line.appendChild(number);
    line.appendChild(document.createTextNode(""));
    log.appendChild(line);
    return line;
  }

  function append(text) {
    const empty = document.getElementById("log-empty");
    if (empty) empty.remove();
    const stick = follow();
    const parts = text.split("\n");
    parts.forEach(function (part, index) {
      const last = index === parts.length - 1;
      if (last && part === "") return;
      const line = open || newLine();
      const body = line.lastChild;
      if (open && body.nodeValue.endsWith("\n")) body.nodeValue = body.nodeValue.slice(0, -1);
      body.nodeValue += part + "\n";
      open = last ? line : null;
    });
    if (stick) window.scrollTo(0, document.body.scrollHeight);
  }

  const source = new EventSource(log.dataset.liveLog + "&offset=" + log.dataset.offset);
  source.addEventListener("log", function (event) {
    const message = JSON.parse(event.data);
    log.dataset.offset = message.offset;
    append(message.text);
  });
  source.addEventListener("end", function () {
    source.close();
    // Show the final status (or the new attempt of a retry); drop any ?attempt= pin.
    window.location.replace(window.location.pathname);
  });
})();
