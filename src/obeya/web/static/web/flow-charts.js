// Flow charts of a board: fetches the flow API named by data-flow-url, draws the charts with
// the vendored Chart.js and fills the table behind each chart with the same numbers.
(function () {
  "use strict";
  if (window.obeyaFlowCharts) return; // the partial may be swapped in more than once
  window.obeyaFlowCharts = true;

  const PALETTE = ["#94a3b8", "#f59e0b", "#2452c9", "#8b5cf6", "#1d7a46", "#b4232a", "#0891b2",
    "#db2777", "#65a30d", "#78716c"];
  const LEAD = "#2452c9";
  const CYCLE = "#f59e0b";

  function colour(index) {
    return PALETTE[index % PALETTE.length];
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "\u2013" : String(text);
    row.appendChild(td);
  }

  function fillTable(root, name, header, rows) {
    const table = root.querySelector('[data-flow-table="' + name + '"]');
    if (!table) return;
    if (header) {
      const head = document.createElement("tr");
      header.forEach(function (title) {
        const th = document.createElement("th");
        th.textContent = title;
        head.appendChild(th);
      });
      table.tHead.replaceChildren(head);
    }
    const body = document.createElement("tbody");
    rows.forEach(function (values) {
      const row = document.createElement("tr");
      values.forEach(function (value) { cell(row, value); });
      body.appendChild(row);
    });
    if (!rows.length) {
      const row = document.createElement("tr");
      cell(row, "Nothing in this window.");
      row.firstChild.colSpan = table.tHead.rows[0].cells.length;
      body.appendChild(row);
    }
    table.tBodies[0].replaceWith(body);
  }

  function draw(root, name, config) {
    const canvas = root.querySelector('[data-flow-chart="' + name + '"]');
    if (!canvas || !window.Chart) return;
    const old = window.Chart.getChart(canvas);
    if (old) old.destroy();
    config.options = Object.assign({
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    }, config.options || {});
    new window.Chart(canvas, config);
  }

  function summary(root, name, text) {
    const place = root.querySelector('[data-flow-summary="' + name + '"]');
    if (place) place.textContent = text;
  }

  function flat(labels, value, label, color) {
    return {
      type: "line", label: label, data: labels.map(function () { return value; }),
      borderColor: color, borderDash: [6, 4], borderWidth: 2, pointRadius: 0, fill: false,
    };
  }

  function times(root, flow) {
    const lead = flow.lead_time;
    const cycle = flow.cycle_time;
    const cycleByKey = {};
    cycle.items.forEach(function (item) { cycleByKey[item.key] = item.hours; });
    const labels = lead.items.map(function (item) { return item.key; });
    const datasets = [
      { type: "bar", label: "Lead time (h)", data: lead.items.map(function (i) { return i.hours; }),
        backgroundColor: LEAD },
      { type: "bar", label: "Cycle time (h)", backgroundColor: CYCLE,
        data: labels.map(function (key) { return key in cycleByKey ? cycleByKey[key] : null; }) },
    ];
    if (lead.median_h !== null) datasets.push(flat(labels, lead.median_h, "Median lead time", LEAD));
    if (cycle.median_h !== null) datasets.push(flat(labels, cycle.median_h, "Median cycle time", CYCLE));
    draw(root, "times", { type: "bar", data: { labels: labels, datasets: datasets },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "hours" } } } } });
    summary(root, "times", lead.items.length
      ? "Lead time median " + lead.median_h + " h, p90 " + lead.p90_h + " h \u00b7 cycle time median " +
        (cycle.median_h === null ? "\u2013" : cycle.median_h + " h, p90 " + cycle.p90_h + " h") +
        " \u00b7 " + lead.items.length + " stories done"
      : "No story was finished in this window.");
    const rows = lead.items.map(function (item) {
      return [item.key, item.done_at.slice(0, 10), item.hours,
        item.key in cycleByKey ? cycleByKey[item.key] : null];
    });
    if (lead.items.length) {
      rows.push(["Median", "", lead.median_h, cycle.median_h]);
      rows.push(["p90", "", lead.p90_h, cycle.p90_h]);
    }
    fillTable(root, "times", null, rows);
  }

  function throughput(root, flow) {
    const weeks = flow.throughput;
    draw(root, "throughput", { type: "bar", data: {
      labels: weeks.map(function (w) { return w.week; }),
      datasets: [{ label: "Stories done", backgroundColor: "#1d7a46",
        data: weeks.map(function (w) { return w.done; }) }],
    }, options: { plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
    const total = weeks.reduce(function (sum, w) { return sum + w.done; }, 0);
    summary(root, "throughput", total + " stories done over " + weeks.length + " weeks");
    fillTable(root, "throughput", null, weeks.map(function (w) { return [w.week, w.done]; }));
  }

  function byDay(root, flow, name, series, key) {
    const names = flow.columns.map(function (c) { return c.name; });
    const days = series.map(function (d) { return d.day; });
    const cfd = name === "cfd";
    // CFD: the last column is drawn first and each band fills down to the one before it.
    const order = cfd ? names.slice().reverse() : names;
    const datasets = order.map(function (column, index) {
      const flags = flow.columns[names.indexOf(column)];
      const color = colour(names.indexOf(column));
      return {
        label: column,
        data: series.map(function (d) { return d[key][column]; }),
        borderColor: color,
        backgroundColor: cfd ? color + "99" : color,
        borderWidth: cfd ? 1 : 2,
        pointRadius: 0,
        fill: cfd ? (index === 0 ? "origin" : "-1") : false,
        hidden: !cfd && flags.is_done, // a done column only grows: it would flatten the rest
      };
    });
    draw(root, name, { type: "line", data: { labels: days, datasets: datasets },
      options: { plugins: { legend: { position: "bottom", reverse: cfd, labels: { boxWidth: 12 } } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
    fillTable(root, name, ["Day"].concat(names), series.map(function (d) {
      return [d.day].concat(names.map(function (column) { return d[key][column]; }));
    }));
  }

  function aging(root, flow) {
    fillTable(root, "aging", null, flow.aging.map(function (card) {
      return [card.key, card.column, card.age_h, card.started ? "started" : "created"];
    }));
  }

  function setLinks(root, url) {
    root.querySelectorAll("[data-flow-download]").forEach(function (link) {
      const target = new URL(url, window.location.href);
      if (link.dataset.flowDownload === "csv") target.searchParams.set("format", "csv");
      link.href = target.pathname + target.search;
    });
  }

  function load(root, url) {
    const status = root.querySelector("[data-flow-status]");
    status.hidden = false;
    status.textContent = "Loading flow metrics\u2026";
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            const message = body && body.error ? body.error.message : response.statusText;
            throw new Error("HTTP " + response.status + ": " + message);
          }
          return body;
        });
      })
      .then(function (flow) {
        times(root, flow);
        throughput(root, flow);
        byDay(root, flow, "cfd", flow.cfd, "bands");
        byDay(root, flow, "wip", flow.wip, "columns");
        aging(root, flow);
        const w = flow.window;
        status.textContent = w.first_day + " to " + w.last_day + " (" + w.days + " days, " +
          w.time_zone + ")";
      })
      .catch(function (error) {
        status.textContent = "The flow metrics could not be loaded (" + error.message +
          "). The JSON and CSV links may still work.";
      });
  }

  function init(scope) {
    const roots = [];
    if (scope.matches && scope.matches("[data-flow-charts]")) roots.push(scope);
    if (scope.querySelectorAll) roots.push.apply(roots, scope.querySelectorAll("[data-flow-charts]"));
    roots.forEach(function (root) {
      if (root.dataset.flowReady) return;
      root.dataset.flowReady = "true";
      let url = root.dataset.flowUrl;
      const picker = root.querySelector("[data-flow-days]");
      if (picker) {
        const days = new URL(url, window.location.href).searchParams.get("days") || "90";
        if (!Array.prototype.some.call(picker.options, function (o) { return o.value === days; })) {
          picker.add(new Option(days + " days", days));
        }
        picker.value = days;
        root.querySelector("[data-flow-days-label]").hidden = false;
        picker.addEventListener("change", function () {
          const next = new URL(url, window.location.href);
          next.searchParams.set("days", picker.value);
          url = next.pathname + next.search;
          setLinks(root, url);
          load(root, url);
        });
      }
      load(root, url);
    });
  }

  init(document);
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
