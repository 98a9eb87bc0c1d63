// The weekly charts of a service's Metrics tab, drawn with the vendored Chart.js from the JSON
// the server wrote beside them (the same numbers as the tables under each chart); and the
// evidence links, which open the table they point to. Without JavaScript the tables tell it all.
(function () {
  "use strict";
  const DEPLOYED = "#2452c9";
  const FAILED = "#b4232a";
  const LEAD = "#1d7a46";
  const RECOVERY = "#9a6200";

  function options(yTitle) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      scales: { y: { beginAtZero: true, title: { display: true, text: yTitle } } },
    };
  }

  const CHARTS = {
    deployments: function (series) {
      return {
        type: "bar",
        data: {
          labels: series.weeks,
          datasets: [
            { label: "Production deployments", data: series.deployments, backgroundColor: DEPLOYED },
            { label: "Failed (rolled back or caused an incident)", data: series.failed,
              backgroundColor: FAILED, borderColor: "#000", borderWidth: 1 },
          ],
        },
        options: Object.assign(options("deployments"), {
          scales: { y: { beginAtZero: true, ticks: { precision: 0 },
            title: { display: true, text: "deployments" } } },
        }),
      };
    },
    lead: function (series) {
      return {
        type: "line",
        data: {
          labels: series.weeks,
          datasets: [{ label: "Lead time, median (h)", data: series.lead_time_h, borderColor: LEAD,
            backgroundColor: LEAD, borderWidth: 2, pointRadius: 4, spanGaps: false }],
        },
        options: options("hours"),
      };
    },
    recovery: function (series) {
      return {
        type: "bar",
        data: {
          labels: series.weeks,
          datasets: [{ label: "Recovery time, median (h)", data: series.recovery_h,
            backgroundColor: RECOVERY }],
        },
        options: options("hours"),
      };
    },
  };

  function draw() {
    const source = document.getElementById("metrics-weeks");
    if (!source || !window.Chart) return;
    const series = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-metrics-chart]").forEach(function (canvas) {
      const make = CHARTS[canvas.dataset.metricsChart];
      if (!make) return;
      const old = window.Chart.getChart(canvas);
      if (old) old.destroy();
      new window.Chart(canvas, make(series));
    });
  }

  function openEvidence(hash) {
    const target = hash && document.getElementById(hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
  }

  document.addEventListener("click", function (event) {
    const link = event.target.closest && event.target.closest("a[data-open-evidence]");
    if (link) openEvidence(link.hash);
  });
  openEvidence(window.location.hash);
  if (window.Chart) draw(); else window.addEventListener("load", draw);
})();
