// The /surface panel: the state (start, learning rate, loss) lives in the query string; the
// server computes every update with the engine; Run streams updates (Server-Sent Events).
"use strict";

const query = Lab.query;
const fmt = Lab.fmt;
const showError = Lab.showError;
const state = {
  lr: query.get("lr") || "0.1",
  loss: query.get("loss") || "mse",
  w0: Number(query.get("w0") || 0),
  b0: Number(query.get("b0") || 0),
  w: 0, b: 0, steps: 0, source: null, busy: false,
};
state.w = state.w0; state.b = state.b0;

function saveState() {
  Lab.save({ lr: state.lr, loss: state.loss, w0: state.w0, b0: state.b0 });
}

function readout(status) {
  $("w").textContent = fmt(state.w);
  $("b").textContent = fmt(state.b);
  $("step-count").textContent = String(state.steps);
  $("w").dataset.value = String(state.w);
  $("b").dataset.value = String(state.b);
  const s = $("status");
  const words = {
    diverged: "diverged: the updates grow without bound (try a smaller learning rate)",
    converged: "converged: the gradient norm fell under 1e-6",
    running: "running", paused: "paused", ready: "ready",
  };
  s.textContent = words[status] || status;
  s.className = status;
}

const api = Lab.get;

// The readouts change with every update; the plot is redrawn at most every 100 ms with all the
// points that came meanwhile (a redraw of the contour map costs tens of milliseconds).
const pending = { x: [], y: [], timer: null };

function flushPath() {
  pending.timer = null;
  if (!pending.x.length) return;
  Plotly.extendTraces("plot", { x: [pending.x], y: [pending.y] }, [1]);
  pending.x = []; pending.y = [];
}

function addPoint(p) {
  state.steps = p.step + state.offset;
  if (p.w !== null) state.w = p.w;
  if (p.b !== null) state.b = p.b;
  $("loss").textContent = fmt(p.loss);
  if (p.w !== null && p.b !== null) {
    pending.x.push(p.w); pending.y.push(p.b);
    if (!pending.timer) pending.timer = setTimeout(flushPath, 100);
  }
  readout(p.status === "running" ? (state.source ? "running" : "paused") : p.status);
  return p.status;
}

async function drawSurface() {
  try {
    const g = await api("/api/surface/grid", { loss: state.loss });
    const contour = {
      type: "contour", x: g.w, y: g.b, z: g.log10_loss, colorscale: "Viridis",
      colorbar: { title: { text: "log10 L" } }, hoverinfo: "skip", ncontours: 30,
    };
    const path = { type: "scatter", mode: "lines+markers", x: [state.w0], y: [state.b0],
      line: { color: "#ff7f0e" }, marker: { size: 4 }, name: "path" };
    const best = { type: "scatter", mode: "markers", x: [g.least_squares[0]], y: [g.least_squares[1]],
      marker: { symbol: "x", size: 12, color: "white" }, name: "least squares" };
    const layout = { margin: { t: 10, r: 10, b: 40, l: 50 }, xaxis: { title: { text: "w" } },
      yaxis: { title: { text: "b" } }, showlegend: false };
    await Plotly.react("plot", [contour, path, best], layout, { responsive: true, displaylogo: false });
    const plot = $("plot");
    plot.on("plotly_click", (ev) => {
      const pt = ev.points[0];
      state.w0 = pt.x; state.b0 = pt.y;
      reset();
    });
  } catch (err) {
    showError(err.message);
  }
}

function stop(status) {
  if (state.source) { state.source.close(); state.source = null; }
  $("run").textContent = "Run";
  readout(status);
}

function reset() {
  stop("ready");
  clearTimeout(pending.timer);
  pending.timer = null; pending.x = []; pending.y = [];
  state.w = state.w0; state.b = state.b0; state.steps = 0;
  $("loss").textContent = "-";
  if ($("plot").data) Plotly.restyle("plot", { x: [[state.w0]], y: [[state.b0]] }, [1]);
  saveState();
  readout("ready");
}

function params() {
  state.lr = $("lr").value.trim();
  state.loss = $("loss-kind").value;
  saveState();
  return { w: state.w, b: state.b, lr: state.lr, loss: state.loss };
}

async function step() {
  if (state.busy || state.source) return;
  state.busy = true;
  showError("");
  try {
    const body = await api("/api/surface/step", { ...params(), steps: 1 });
    state.offset = state.steps;
    for (const p of body.points) addPoint(p);
  } catch (err) {
    showError(err.message);
  } finally {
    state.busy = false;
  }
}

async function run() {
  if (state.source) { stop("paused"); return; }
  showError("");
  const p = params();
  try {  // check the inputs with one request the page can read (EventSource hides errors)
    await api("/api/surface/step", { ...p, steps: 1 });
  } catch (err) {
    showError(err.message);
    return;
  }
  state.offset = state.steps;
  const source = Lab.stream("/api/surface/run", p, (point) => {
    if (state.source !== source) return;
    const status = addPoint(point);
    if (status !== "running") stop(status);
  }, () => { if (state.source === source) stop("paused"); });
  state.source = source;
  $("run").textContent = "Pause";
}

$("lr").value = state.lr;
$("loss-kind").value = state.loss;
$("step").addEventListener("click", step);
$("run").addEventListener("click", run);
$("reset").addEventListener("click", reset);
$("loss-kind").addEventListener("change", () => { params(); reset(); drawSurface(); });
$("lr").addEventListener("change", () => { params(); });
Lab.wireExports("surface", "plot", () => ({
  path: "/api/surface/model", params: { w: state.w, b: state.b, lr: state.lr, loss: state.loss },
}));
readout("ready");
drawSurface();
