// SLO charts of the Operations tab: each canvas names the JSON script beside it (written by
// the server with the same numbers as the table under the chart); drawn with the vendored
// Chart.js. Without JavaScript the table still tells it all.
(function () {
  "use strict";
  if (window.obeyaSloCharts) return;
  window.obeyaSloCharts = true;

  const ACHIEVED = "#2452c9";
  const OBJECTIVE = "#b4232a";

  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.sloChart);
    if (!source || !window.Chart) return;
    const series = JSON.parse(source.textContent);
    const old = window.Chart.getChart(canvas);
    if (old) old.destroy();
    const values = series.achieved.filter(function (v) { return v !== null; });
    const lowest = Math.min.apply(null, values.concat([series.objective]));
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: series.days,
        datasets: [
          { label: "Achieved (%)", data: series.achieved, borderColor: ACHIEVED,
            backgroundColor: ACHIEVED, borderWidth: 2, pointRadius: 2, spanGaps: false },
          { label: "Objective (" + series.objective + " %)",
            data: series.days.map(function () { return series.objective; }),
            borderColor: OBJECTIVE, borderDash: [6, 4], borderWidth: 2, pointRadius: 0 },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        scales: {
          y: { max: 100, suggestedMin: Math.max(0, Math.floor(lowest - 1)),
            title: { display: true, text: "% good checks" } },
        },
      },
    });
  }

  function init(scope) {
    if (!scope.querySelectorAll) return;
    scope.querySelectorAll("canvas[data-slo-chart]").forEach(draw);
  }

  function start() { init(document); }
  if (window.Chart) start(); else window.addEventListener("load", start);
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
