// The /critical panel: the settings live in the query string; the server holds the network
// (a run id) and computes every number (gradstep.lab.critical_points). Run streams the search
// for a small gradient; Inspect draws the exact Hessian's eigenvalues; Escape and Step along u
// leave a saddle point along its most negative eigenvector. Landscape draws the loss over a plane
// through the weights (gradstep.lab.landscape); Study streams the homework's minimum-ratio study.
"use strict";

const FIELDS = {  // query-string name -> control id
  hidden: "hidden", activation: "activation", seed: "seed", start: "start", epochs: "epochs",
  lr: "lr", grad_tol: "grad-tol", max_steps: "max-steps", tol: "tol", t: "t",
  plane: "plane", first: "first", second: "second", span: "span", study_seeds: "study-seeds",
};
const NETWORK = ["hidden", "activation", "seed", "start"];  // a change makes a new network
const state = { run: null, source: null, generation: 0, epochs: 0, study: null };
const PLOT = { responsive: true, displaylogo: false };
const COLORS = { negative: "#d62728", zero: "#8c8c8c", positive: "#1f77b4" };

function readSettings() {
  const s = {};
  for (const [name, id] of Object.entries(FIELDS)) s[name] = $(id).value.trim();
  return s;
}

function withRun(settings) { return state.run ? { ...settings, run: state.run } : settings; }

function setOutput(id, value, text) {
  $(id).textContent = text === undefined ? Lab.fmt(value) : text;
  $(id).dataset.value = value === null || value === undefined ? "" : String(value);
}

function setStatus(kind, words) {
  $("status").className = kind;
  $("status").textContent = words;
}

// --- Run: Adam, then Levenberg-Marquardt steps on |g|^2, one event per step ------------------

const pending = { x: [[], []], y: [[], []], timer: null };

function flush() {
  pending.timer = null;
  if (!pending.x[0].length && !pending.x[1].length) return;
  const layout = $("norms").layout;
  if (layout && layout.annotations && layout.annotations.length) Plotly.relayout("norms", { annotations: [] });
  Plotly.extendTraces("norms", { x: pending.x, y: pending.y }, [0, 1]);
  pending.x = [[], []]; pending.y = [[], []];
}

function drawNorms() {
  const trace = (name, color) => ({ type: "scatter", mode: "lines+markers", x: [], y: [], name,
    line: { color }, marker: { size: 4 } });
  const layout = {
    margin: { t: 10, r: 10, b: 45, l: 60 },
    xaxis: { title: { text: "step (Adam epochs, then |g|\u00b2 steps after them)" } },
    yaxis: { title: { text: "|g|" }, type: "log", exponentformat: "power" },
    legend: { x: 1, xanchor: "right", y: 1 },
    annotations: [{ text: "Run draws |g| at each step here", showarrow: false, xref: "paper",
      yref: "paper", x: 0.5, y: 0.5, font: { color: "#5a6472" } }],
  };
  return Plotly.react("norms", [trace("Adam on the loss", "#1f77b4"),
    trace("minimising |g|\u00b2", "#d62728")], layout, PLOT);
}

function addProgress(p) {
  state.run = p.run;
  if (p.phase === "done") return;
  const second = p.phase === "gradient norm";
  const x = second ? state.epochs + p.step : p.step;
  setOutput("phase", p.phase, second ? "minimising |g|\u00b2" : "Adam");
  setOutput("step-count", p.step, String(p.step));
  setOutput("run-loss", p.loss);
  setOutput("run-grad", p.grad_norm);
  if (p.grad_norm > 0) {  // a log axis has no place for an exact zero (the saddle start)
    pending.x[second ? 1 : 0].push(x);
    pending.y[second ? 1 : 0].push(p.grad_norm);
  }
  if (!pending.timer) pending.timer = setTimeout(flush, 50);
  setStatus("running", second ? "minimising the squared gradient norm" : "training with Adam");
}

function finished(p) {
  const words = {
    reached: `reached: |g| = ${Lab.fmt(p.grad_norm)} is under the tolerance`,
    stalled: `stalled at |g| = ${Lab.fmt(p.grad_norm)}: no damped step lowered |g| further (a ReLU kink or a flat valley)`,
    "max steps": `stopped after ${p.gradient_norm_steps} |g|\u00b2 steps at |g| = ${Lab.fmt(p.grad_norm)}`,
  };
  setStatus(p.stop === "reached" ? "done" : "stopped", words[p.stop] || p.stop);
  $("status").dataset.stop = p.stop;
}

function stopStream() {
  if (state.source) { state.source.close(); state.source = null; }
  $("run").textContent = "Run";
}

async function run() {
  if (state.source) {
    stopStream(); flush();
    setStatus("stopped", "stopped (the network keeps the weights it had reached)");
    return;
  }
  Lab.showError("");
  const settings = readSettings();
  Lab.save(settings);
  try {  // check the inputs with one request the page can read (an EventSource hides a 400)
    await Lab.get("/api/critical/check", withRun(settings));
  } catch (err) {
    Lab.showError(err.message);
    return;
  }
  state.epochs = Number(settings.epochs);
  state.generation += 1;  // an inspection still on its way describes the old weights
  clearInspection();
  clearTimeout(pending.timer);
  pending.timer = null; pending.x = [[], []]; pending.y = [[], []];
  await drawNorms();
  setStatus("running", "training with Adam");
  delete $("status").dataset.stop;
  const source = Lab.stream("/api/critical/run", withRun(settings), (p) => {
    if (state.source !== source) return;
    addProgress(p);
    if (p.phase === "done") { stopStream(); flush(); finished(p); inspect(); }
  }, () => {
    if (state.source !== source) return;
    stopStream(); flush();
    setStatus("stopped", "the stream ended early (the server stopped?)");
  });
  state.source = source;
  $("run").textContent = "Pause";
}

// --- Inspect: the exact Hessian's eigenvalues ------------------------------------------------

// A symmetric log scale, so negative eigenvalues of 1e-4 show beside positive ones of 10:
// y = sign(lambda) log10(1 + |lambda| / c), c the zero tolerance (zero eigenvalues lie within
// log10(2) of the axis). The hover text gives each eigenvalue itself.
function symlog(v, c) { return Math.sign(v) * Math.log10(1 + Math.abs(v) / c); }

function symlogTicks(c, largest) {
  const vals = [0], text = ["0"];
  const top = Math.ceil(Math.log10(Math.max(largest, c)));
  // from 10 c up: the decade at c itself would sit on top of 0's label
  for (let k = Math.floor(Math.log10(c)) + 1; k <= top; k++) {
    const y = symlog(10 ** k, c);
    vals.push(y, -y); text.push(`1e${k}`, `-1e${k}`);
  }
  return { tickvals: vals, ticktext: text };
}

function drawSpectrum(r) {
  const c = r.zero > 0 ? r.zero : 1e-300;
  const groups = { negative: [[], [], []], zero: [[], [], []], positive: [[], [], []] };
  r.eigenvalues.forEach((v, i) => {
    const g = v < -r.zero ? "negative" : (v > r.zero ? "positive" : "zero");
    groups[g][0].push(i + 1); groups[g][1].push(symlog(v, c)); groups[g][2].push(`\u03bb = ${v.toExponential(4)}`);
  });
  const traces = Object.entries(groups).map(([name, [x, y, text]]) => ({
    type: "scatter", mode: "markers", x, y, text, hoverinfo: "text+x",
    name: `${name} (${x.length})`, marker: { color: COLORS[name], size: 6 },
  }));
  const largest = Math.max(...r.eigenvalues.map(Math.abs));
  const layout = {
    margin: { t: 10, r: 10, b: 45, l: 70 },
    xaxis: { title: { text: `eigenvalue, sorted (${r.parameters} parameters)` } },
    yaxis: { title: { text: "\u03bb (symmetric log scale)" }, ...symlogTicks(c, largest), zeroline: true },
    legend: { x: 0, y: 1 },
  };
  return Plotly.react("spectrum", traces, layout, PLOT);
}

function showInspection(r) {
  setOutput("grad-norm", r.grad_norm);
  setOutput("loss", r.loss);
  setOutput("n-positive", r.n_positive, String(r.n_positive));
  setOutput("n-negative", r.n_negative, String(r.n_negative));
  setOutput("n-zero", r.n_zero, String(r.n_zero));
  setOutput("zero-tol", r.zero, `${Lab.fmt(r.zero)} = ${r.tol.toExponential()} \u00b7 max|\u03bb|`);
  setOutput("ratio-exact", r.minimum_ratio, r.minimum_ratio.toFixed(3));
  setOutput("ratio-gn", r.minimum_ratio_gauss_newton, r.minimum_ratio_gauss_newton.toFixed(3));
  setOutput("verdict", r.verdict, r.verdict);
  $("verdict").className = r.verdict.replace(/[^a-z]+/g, "-");
  $("verdict-explain").textContent = r.meaning;
  $("gn-explain").textContent = r.gauss_newton;
}

async function inspect() {
  Lab.showError("");
  const settings = readSettings();
  Lab.save(settings);
  const generation = state.generation;
  try {
    const r = await Lab.get("/api/critical/inspect", withRun(settings));
    if (generation !== state.generation) return;
    state.run = r.run;
    showInspection(r);
    await drawSpectrum(r);
  } catch (err) {
    Lab.showError(err.message);
  }
}

// --- Escape: the loss along theta + t u, and one step there ----------------------------------

async function escape() {
  Lab.showError("");
  const settings = readSettings();
  Lab.save(settings);
  const generation = state.generation;
  try {
    const r = await Lab.get("/api/critical/escape", withRun(settings));
    if (generation !== state.generation) return;
    state.run = r.run;
    $("escape-note").dataset.negative = String(r.negative);
    if (!r.negative) {
      $("escape-note").textContent = r.message;
      Plotly.purge("escape-plot");
      return;
    }
    const i0 = r.t.indexOf(0);
    $("escape-note").textContent = `\u03bb_min = ${r.eigenvalue.toExponential(3)}: along u the `
      + `loss goes from ${Lab.fmt(r.loss[i0])} at t = 0 to ${Lab.fmt(r.loss[0])} at t = ${r.t[0]} `
      + `and ${Lab.fmt(r.loss[r.loss.length - 1])} at t = ${r.t[r.t.length - 1]}.`;
    await Plotly.react("escape-plot", [
      { type: "scatter", mode: "lines+markers", x: r.t, y: r.loss, name: "true loss L(\u03b8 + t u)",
        line: { color: "#1f77b4" }, marker: { size: 4 } },
      { type: "scatter", mode: "lines", x: r.t, y: r.model, name: "second-order model",
        line: { color: "#ff7f0e", dash: "dash" } },
    ], {
      margin: { t: 30, r: 10, b: 45, l: 60 },
      xaxis: { title: { text: "t (\u03b8 + t u)" } }, yaxis: { title: { text: "loss (MSE)" } },
      shapes: [{ type: "line", x0: r.step, x1: r.step, yref: "paper", y0: 0, y1: 1,
        line: { color: "#555", dash: "dot" } }],
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    }, PLOT);
  } catch (err) {
    Lab.showError(err.message);
  }
}

async function stepAlongU() {
  Lab.showError("");
  const s = readSettings();
  Lab.save(s);
  const before = $("loss").dataset.value;
  try {
    const r = await Lab.post("/api/critical/step",
      { run: state.run, t: s.t, tol: s.tol, grad_tol: s.grad_tol });
    state.run = r.run;
    setOutput("loss", r.loss);
    setOutput("grad-norm", r.grad_norm);
    clearInspection(["n-positive", "n-negative", "n-zero", "ratio-exact", "ratio-gn", "verdict"]);
    $("verdict-explain").textContent = "Moved: press Inspect to classify the new point, or Run to train from it.";
    const was = before ? ` (it was ${Lab.fmt(Number(before))})` : "";
    $("escape-note").textContent = `moved to \u03b8 + ${r.t} u: L = ${Lab.fmt(r.loss)}${was}, |g| = ${Lab.fmt(r.grad_norm)}`;
  } catch (err) {
    Lab.showError(err.message);
  }
}

// --- Landscape: log10 loss over a plane through the current weights ---------------------------

async function landscape() {
  Lab.showError("");
  const settings = readSettings();
  Lab.save(settings);
  const generation = state.generation;
  try {
    const r = await Lab.get("/api/critical/landscape", withRun(settings));
    if (generation !== state.generation) return;
    state.run = r.run;
    setOutput("landscape-center", r.center_loss);
    // log10 of the loss; a cell the server sent as null (overflow far out) stays empty
    const z = r.loss.map((row) => row.map((v) => (v === null || v <= 0 ? null : Math.log10(v))));
    await Plotly.react("landscape-plot", [
      { type: "contour", x: r.x, y: r.y, z, colorscale: "Viridis", ncontours: 30,
        colorbar: { title: { text: "log10 loss" } }, hovertemplate: "%{x:.4g}, %{y:.4g}: log10 L = %{z:.4g}<extra></extra>" },
      { type: "scatter", mode: "markers", x: [r.center[0]], y: [r.center[1]], name: "current weights",
        marker: { symbol: "x", color: "#d62728", size: 12, line: { width: 2 } }, showlegend: false },
    ], {
      margin: { t: 10, r: 10, b: 45, l: 70 },
      xaxis: { title: { text: r.names[0] } }, yaxis: { title: { text: r.names[1] } },
    }, PLOT);
  } catch (err) {
    Lab.showError(err.message);
  }
}

// --- Study: the minimum ratio against the loss, one training per seed ------------------------

function stopStudy() {
  if (state.study) { state.study.close(); state.study = null; }
  $("study").textContent = "Study";
}

async function study() {
  if (state.study) { stopStudy(); return; }
  Lab.showError("");
  const settings = readSettings();
  Lab.save(settings);
  try {
    await Lab.get("/api/critical/check", settings);  // an EventSource hides a 400
  } catch (err) {
    Lab.showError(err.message);
    return;
  }
  const trace = (name, color, symbol) => ({ type: "scatter", mode: "markers", x: [], y: [], text: [],
    name, marker: { color, symbol, size: 9 }, hovertemplate: "L = %{x:.4g}, ratio %{y:.3f}<br>%{text}<extra></extra>" });
  setOutput("study-count", 0, "0");
  await Plotly.react("study-plot", [trace("exact Hessian", "#1f77b4", "circle"),
    trace("Gauss-Newton (the course's)", "#ff7f0e", "diamond")], {
    margin: { t: 30, r: 10, b: 45, l: 60 },
    title: { text: `1-${settings.hidden}-1 ${settings.activation}, seeds ${settings.seed} on`, font: { size: 13 } },
    xaxis: { title: { text: "training loss (MSE)" }, type: "log", exponentformat: "power" },
    yaxis: { title: { text: "minimum ratio (share of positive eigenvalues)" }, range: [0, 1.05] },
    legend: { x: 1, xanchor: "right", y: 0.02, yanchor: "bottom" },
  }, PLOT);
  const source = Lab.stream("/api/critical/study", settings, (row) => {
    if (state.study !== source) return;
    const text = `seed ${row.seed}: ${row.verdict}, |g| = ${Lab.fmt(row.grad_norm)}`;
    Plotly.extendTraces("study-plot", { x: [[row.loss], [row.loss]],
      y: [[row.minimum_ratio], [row.minimum_ratio_gauss_newton]], text: [[text], [text]] }, [0, 1]);
    setOutput("study-count", row.done, `${row.done} of ${row.of}`);
  }, () => { if (state.study === source) stopStudy(); });
  state.study = source;
  $("study").textContent = "Stop";
}

// --- Settings, reset and exports -------------------------------------------------------------

// The inspection describes the weights it was made at; once they move it is cleared.
function clearInspection(ids) {
  for (const id of ids || ["grad-norm", "loss", "n-positive", "n-negative", "n-zero", "zero-tol",
    "ratio-exact", "ratio-gn", "verdict"]) setOutput(id, null, "-");
  $("verdict").className = "";
  $("verdict-explain").textContent = "";
  $("gn-explain").textContent = "";
}

function clearAll() {
  stopStream();
  state.generation += 1;
  state.run = null;
  for (const id of ["phase", "run-loss", "run-grad"]) setOutput(id, null, "-");
  setOutput("step-count", 0, "0");
  clearInspection();
  setStatus("ready", "ready");
  setOutput("landscape-center", null, "-");
  for (const id of ["spectrum", "escape-plot", "landscape-plot"]) Plotly.purge(id);
  return drawNorms();
}

Lab.restore(FIELDS, (id, name) => {
  Lab.save(readSettings());
  if (NETWORK.includes(name)) clearAll();  // another network: the old run no longer applies
});
$("run").addEventListener("click", run);
$("inspect").addEventListener("click", inspect);
$("reset").addEventListener("click", () => { Lab.showError(""); clearAll(); });
$("escape").addEventListener("click", escape);
$("step-along-u").addEventListener("click", stepAlongU);
$("landscape").addEventListener("click", landscape);
$("study").addEventListener("click", study);
Lab.wireExports("critical", "spectrum", () => ({
  path: "/api/critical/model", params: withRun(readSettings()),
}), () => {  // the PNG is the eigenvalue plot, which exists once a point is inspected
  if (!$("spectrum").data) { Lab.showError("press Inspect first: the figure saved is the eigenvalue plot"); return; }
  Plotly.downloadImage("spectrum", { format: "png", filename: "critical", width: 1000, height: 600 });
});
drawNorms();
