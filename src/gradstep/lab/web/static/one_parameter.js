// The /one-parameter panel: w <- w - lr dL/dw on the lecture's curve, computed by the server's
// engine; the tangent at the current w is redrawn after each update.
"use strict";

const op = {
  w0: Lab.query.get("w0") || "-0.3",
  lr: Lab.query.get("lr") || "0.05",
  w: null, steps: 0, source: null, busy: false, curve: null,
};

function settings() {
  op.w0 = $("w0").value.trim();
  op.lr = $("lr").value.trim();
  Lab.save({ w0: op.w0, lr: op.lr });
  return { w0: op.w0, lr: op.lr };
}

function describe(p) {
  if (p.status === "diverged") return "diverged: each step overshoots further (try a smaller learning rate)";
  if (p.status === "converged") {
    const g = op.curve.global_minimum;
    return p.where === "local minimum"
      ? `converged: dL/dw fell under 1e-6, stuck in a local minimum at w = ${p.w.toFixed(3)} (the global minimum is at w = ${g.toFixed(3)})`
      : `converged: dL/dw fell under 1e-6 at the global minimum, w = ${p.w.toFixed(3)}`;
  }
  return p.status;
}

function show(p) {  // p: {w, loss, slope, status}
  if (p.w !== null) op.w = p.w;
  $("w").textContent = Lab.fmt(p.w);
  $("loss").textContent = Lab.fmt(p.loss);
  $("slope").textContent = Lab.fmt(p.slope);
  for (const k of ["w", "loss", "slope"]) $(k).dataset.value = String(p[k]);
  $("step-count").textContent = String(op.steps);
  const s = $("status");
  s.textContent = describe(p);
  s.className = p.status;
  if (p.w !== null) {
    const span = 0.7;
    const xs = [p.w - span, p.w + span];
    Plotly.restyle("plot", { x: [xs, [p.w]], y: [xs.map((x) => p.loss + p.slope * (x - p.w)), [p.loss]] }, [1, 3]);
  }
}

function addPoint(p) {
  op.steps = p.step + op.offset;
  if (p.w !== null) Plotly.extendTraces("plot", { x: [[p.w]], y: [[p.loss]] }, [2]);
  show(p);
  return p.status;
}

async function start() {  // the start's value, slope and tangent
  stop();
  settings();
  op.steps = 0;
  try {
    const p = await Lab.get("/api/one-parameter/point", { w: op.w0 });
    Plotly.restyle("plot", { x: [[p.w]], y: [[p.loss]] }, [2]);
    show({ ...p, status: "ready" });
    Lab.showError("");
  } catch (err) {
    Lab.showError(err.message);
  }
}

function stop(status) {
  if (op.source) { op.source.close(); op.source = null; }
  $("run").textContent = "Run";
  if (status) { $("status").textContent = status; $("status").className = status; }
}

function walkParams() {
  const s = settings();
  return { w0: op.w === null ? s.w0 : op.w, lr: s.lr };
}

async function step() {
  if (op.busy || op.source) return;
  op.busy = true;
  Lab.showError("");
  try {
    const body = await Lab.get("/api/one-parameter/step", { ...walkParams(), steps: 1 });
    op.offset = op.steps;
    for (const p of body.points) addPoint(p);
  } catch (err) {
    Lab.showError(err.message);
  } finally {
    op.busy = false;
  }
}

async function run() {
  if (op.source) { stop("paused"); return; }
  Lab.showError("");
  const params = walkParams();
  try {  // one request the page can read first (an EventSource hides the server's message)
    await Lab.get("/api/one-parameter/step", { ...params, steps: 1 });
  } catch (err) {
    Lab.showError(err.message);
    return;
  }
  op.offset = op.steps;
  const source = Lab.stream("/api/one-parameter/run", params, (p) => {
    if (op.source !== source) return;
    if (addPoint(p) !== "running") stop();
  }, () => { if (op.source === source) stop("paused"); });
  op.source = source;
  $("run").textContent = "Pause";
}

async function draw() {
  try {
    op.curve = await Lab.get("/api/one-parameter/curve");
  } catch (err) {
    Lab.showError(err.message);
    return;
  }
  const c = op.curve;
  const lo = Math.min(...c.loss);
  const traces = [
    { x: c.w, y: c.loss, mode: "lines", name: "L(w)", line: { color: "#1f77b4" } },
    { x: [], y: [], mode: "lines", name: "tangent", line: { dash: "dash", color: "#7f7f7f" } },
    { x: [], y: [], mode: "lines+markers", name: "w after each step", line: { color: "#d62728" }, marker: { size: 5 } },
    { x: [], y: [], mode: "markers", name: "now", marker: { size: 11, color: "#d62728" } },
  ];
  const layout = {
    margin: { t: 10, r: 10, b: 40, l: 50 }, xaxis: { title: { text: "w" } },
    yaxis: { title: { text: "L(w)" }, range: [lo - 0.5, lo + 6] }, legend: { orientation: "h" },
  };
  await Plotly.react("plot", traces, layout, { responsive: true, displaylogo: false });
  $("plot").on("plotly_click", (ev) => {
    $("w0").value = ev.points[0].x.toFixed(3);
    op.w = null;
    start();
  });
  await start();
}

$("w0").value = op.w0;
$("lr").value = op.lr;
$("step").addEventListener("click", step);
$("run").addEventListener("click", run);
$("reset").addEventListener("click", () => { op.w = null; start(); });
$("w0").addEventListener("change", () => { op.w = null; start(); });
$("lr").addEventListener("change", settings);
Lab.wireExports("one-parameter", "plot", () => ({
  path: "/api/one-parameter/model", params: { w: op.w === null ? op.w0 : op.w, w0: op.w0, lr: op.lr },
}));
draw();
