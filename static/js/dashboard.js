// Staff dashboard charts (admin). Data comes from the page's json_script block (no inline
// script: the CSP allows only our own files); Chart.js is the npm build served as a static file
// (vendor/chartjs/chart.umd.min.js, loaded before this module, defines window.Chart).

const data = JSON.parse(document.getElementById("dashboard-data").textContent);
const { Chart } = window;

const GREEN = "rgb(46, 125, 50)";
const RED = "rgb(198, 40, 40)";
const BLUE = "rgb(21, 101, 192)";
const ORANGE = "rgb(239, 108, 0)";

function translucent(rgb, alpha = 0.45) {
  return rgb.replace("rgb(", "rgba(").replace(")", `, ${alpha})`);
}

Chart.defaults.animation = false; // static review page; also makes screenshots deterministic
Chart.defaults.maintainAspectRatio = false;

function empty(canvas, message) {
  const note = document.createElement("p");
  note.className = "chart-empty";
  note.textContent = message;
  canvas.replaceWith(note);
}

// Bin centres of a histogram, as labels.
function centres(edges) {
  return edges.slice(0, -1).map((e, i) => ((e + edges[i + 1]) / 2).toFixed(2));
}

const thresholdLine = {
  id: "thresholdLine",
  afterDatasetsDraw(chart, _args, options) {
    if (options.value == null) return;
    const { ctx, chartArea, scales } = chart;
    const x = scales.x.getPixelForValue(options.value);
    if (x < chartArea.left || x > chartArea.right) return;
    ctx.save();
    ctx.strokeStyle = "#333";
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(x, chartArea.top);
    ctx.lineTo(x, chartArea.bottom);
    ctx.stroke();
    ctx.fillStyle = "#333";
    ctx.fillText(options.label ?? "threshold", x + 4, chartArea.top + 12);
    ctx.restore();
  },
};

function histogram(id, hist, series) {
  const canvas = document.getElementById(id);
  if (!hist.edges.length) {
    empty(canvas, "No scored attempts yet.");
    return;
  }
  const edges = hist.edges;
  // A linear x axis so the threshold line sits at its true position between bins.
  const datasets = series.map(([key, label, colour]) => ({
    label: `${label} (${hist[key].reduce((a, b) => a + b, 0)})`,
    data: hist[key].map((n, i) => ({ x: (edges[i] + edges[i + 1]) / 2, y: n })),
    backgroundColor: translucent(colour),
    borderColor: colour,
    borderWidth: 1,
    barPercentage: 1.0,
    categoryPercentage: 1.0,
    grouped: false,
  }));
  new Chart(canvas, {
    type: "bar",
    data: { datasets },
    options: {
      scales: {
        x: {
          type: "linear",
          min: edges[0],
          max: edges[edges.length - 1],
          title: { display: true, text: "score" },
        },
        y: { beginAtZero: true, title: { display: true, text: "attempts" }, ticks: { precision: 0 } },
      },
      plugins: { thresholdLine: { value: data.threshold } },
    },
    plugins: [thresholdLine],
  });
}

function perDay() {
  const d = data.per_day;
  new Chart(document.getElementById("chart-per-day"), {
    type: "bar",
    data: {
      labels: d.days.map((day) => day.slice(5)),
      datasets: [
        { label: "accept", data: d.accept, backgroundColor: GREEN },
        { label: "reject", data: d.reject, backgroundColor: RED },
      ],
    },
    options: {
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
      },
    },
  });
}

function rates() {
  const canvas = document.getElementById("chart-rates");
  const curve = data.rates.curve;
  if (!curve) {
    empty(canvas, "Label at least one genuine and one impostor attempt to estimate FAR / FRR.");
    return;
  }
  const points = (ys) => curve.thresholds.map((x, i) => ({ x, y: 100 * ys[i] }));
  new Chart(canvas, {
    type: "line",
    data: {
      datasets: [
        { label: "FAR %", data: points(curve.far), borderColor: ORANGE, stepped: true, pointRadius: 0 },
        { label: "FRR %", data: points(curve.frr), borderColor: BLUE, stepped: true, pointRadius: 0 },
      ],
    },
    options: {
      scales: {
        x: { type: "linear", title: { display: true, text: "threshold" } },
        y: { min: 0, max: 100, title: { display: true, text: "%" } },
      },
      plugins: { thresholdLine: { value: data.threshold, label: "in force" } },
    },
    plugins: [thresholdLine],
  });
}

perDay();
histogram("chart-decisions", data.decisions, [
  ["accepted", "accepted", GREEN],
  ["rejected", "rejected", RED],
]);
histogram("chart-labels", data.labels, [
  ["genuine", "genuine", BLUE],
  ["impostor", "impostor", ORANGE],
]);
rates();
