// The /piecewise panel: the units (w, b, c per unit and the constant c0) live in the query
// string; the server computes every curve and every training update with the engine; Train
// streams the units as Adam moves them (Server-Sent Events) and the sliders follow.
"use strict";

const fmt = Lab.fmt;
const showError = Lab.showError;
const KINDS = Array.from($("kind").options, (o) => o.value);
const RANGES = { w: [-60, 60], b: [-60, 60], c: [-3, 3] };
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8"];
const state = {
  kind: "sigmoid", w: [], b: [], c: [], c0: 0, steps: 0, offset: 0,
  source: null, starting: false, x: null, target: null,
  version: 0, // bumped whenever the units change: a curve that comes back late is not drawn
};

function unitParams() {
  return { kind: state.kind, w: state.w.join(","), b: state.b.join(","), c: state.c.join(","),
    c0: state.c0 };
}

function saveState() {
  Lab.save({ ...unitParams(), lr: $("lr").value.trim() });
}

function setStatus(status) {
  const words = {
    diverged: "diverged: a unit or the loss grew without bound (try a smaller learning rate)",
    done: "done: the step limit was reached", running: "training", paused: "paused",
    ready: "ready", dragged: "set by hand",
  };
  const s = $("status");
  s.textContent = words[status] || status;
  s.className = status;
}

function showNumber(id, value) {
  const o = $(id);
  o.textContent = fmt(value);
  o.dataset.value = value === null || value === undefined ? "" : String(value);
}

function showSteps() {
  $("step-count").textContent = String(state.steps);
}

// One row of three sliders (w, b, c) and their exact values per unit; unit i is 1-based.
function buildRows() {
  for (const row of document.querySelectorAll(".unit-row.unit")) row.remove();
  const rows = $("unit-rows");
  state.w.forEach((_, j) => {
    const i = j + 1;
    const row = document.createElement("div");
    row.className = "unit-row unit";
    const name = document.createElement("span");
    name.className = "unit-name";
    name.textContent = `unit ${i}`;
    name.style.color = COLORS[j % COLORS.length];
    row.appendChild(name);
    for (const p of ["w", "b", "c"]) {
      const label = document.createElement("label");
      label.textContent = `${p}${i} `;
      const slider = document.createElement("input");
      Object.assign(slider, { type: "range", id: `${p}-${i}`, min: RANGES[p][0],
        max: RANGES[p][1], step: 0.01 });
      slider.addEventListener("input", () => drag(p, j, Number(slider.value)));
      slider.addEventListener("change", saveState);
      label.appendChild(slider);
      const out = document.createElement("output");
      out.id = `${p}-${i}-value`;
      row.append(label, out);
    }
    rows.appendChild(row);
  });
  $("units").value = String(state.w.length);
  $("kind").value = state.kind;
}

function showUnits() {
  state.w.forEach((_, j) => {
    for (const p of ["w", "b", "c"]) {
      $(`${p}-${j + 1}`).value = String(state[p][j]);
      showNumber(`${p}-${j + 1}-value`, state[p][j]);
    }
  });
  $("c0").value = String(state.c0);
  showNumber("c0-value", state.c0);
}

function setUnits(u) {
  const resized = u.w.length !== state.w.length;
  state.w = u.w.slice(); state.b = u.b.slice(); state.c = u.c.slice(); state.c0 = u.c0;
  if (u.kind) { state.kind = u.kind; $("kind").value = u.kind; }
  state.version += 1;
  if (resized || !document.querySelector(".unit-row.unit")) buildRows();
  showUnits();
}

function draw(cv) {
  if (!state.x) return;
  const x = state.x;
  const k = cv.parts.length;
  const act = state.kind === "sigmoid" ? "sigmoid" : "ReLU";
  const traces = [
    { x, y: state.target, name: "target", line: { color: "black", width: 4 } },
    { x: [0, 1], y: [cv.constant, cv.constant], name: "constant c0",
      line: { color: "gray", dash: "dot", width: 2 } },
    ...cv.parts.map((y, j) => ({ x, y, name: `c${j + 1} ${act}(b${j + 1} + w${j + 1} x)`,
      line: { color: COLORS[j % COLORS.length], dash: "dash", width: 1.5 } })),
    { x, y: cv.sum, name: `sum of the constant and ${k} ${act}s`,
      line: { color: "#d62728", width: 2.5 } },
  ];
  const layout = {
    margin: { t: 10, r: 10, b: 40, l: 50 }, xaxis: { title: { text: "x" }, range: [0, 1] },
    yaxis: { title: { text: "y" }, range: [-1.5, 1.7] }, legend: { font: { size: 11 } },
  };
  for (const t of traces) t.mode = "lines";
  Plotly.react("plot", traces, layout, { responsive: true, displaylogo: false });
  showNumber("loss", cv.loss);
}

// The curve for the units on the page, from the server; while one request is out, slider
// moves only mark that another is due (a drag fires many input events).
const fetcher = { busy: false, again: false };

async function refresh() {
  if (fetcher.busy) { fetcher.again = true; return; }
  fetcher.busy = true;
  try {
    do {
      fetcher.again = false;
      const version = state.version;
      const body = await Lab.get("/api/piecewise/curve", unitParams());
      if (version === state.version && !state.source) draw(body);
    } while (fetcher.again);
  } catch (err) {
    showError(err.message);
  } finally {
    fetcher.busy = false;
  }
}

function stop(status) {
  if (state.source) { state.source.close(); state.source = null; }
  $("train").textContent = "Train";
  setStatus(status);
  saveState();
}

function drag(p, j, value) {
  if (state.source) stop("paused");
  state[p][j] = value;
  state.version += 1;
  state.steps = 0; // the count is of updates since the units were last set by hand
  showSteps();
  showNumber(`${p}-${j + 1}-value`, value);
  setStatus("dragged");
  refresh();
}

$("c0").addEventListener("input", () => {
  if (state.source) stop("paused");
  state.c0 = Number($("c0").value);
  state.version += 1;
  state.steps = 0;
  showSteps();
  showNumber("c0-value", state.c0);
  setStatus("dragged");
  refresh();
});
$("c0").addEventListener("change", saveState);

async function loadDefaults(kind, k) {
  if (state.source) stop("paused");
  const params = k ? { kind, units: k } : { kind };
  setUnits(await Lab.get("/api/piecewise/defaults", params));
  state.steps = 0;
  showSteps();
  setStatus("ready");
  saveState();
  await refresh();
}

function onPoint(p) {
  state.steps = state.offset + p.step;
  showSteps();
  if (p.status === "diverged") { showNumber("loss", null); stop("diverged"); return; }
  setUnits(p);
  draw(p.curve);
  showNumber("loss", p.loss); // the training's own number (the curve's agrees to rounding)
  if (p.status === "done") stop("done");
}

async function train() {
  if (state.source) { stop("paused"); return; }
  if (state.starting) return; // a second click while the first is checked starts nothing
  showError("");
  const params = { ...unitParams(), lr: $("lr").value.trim() };
  saveState();
  state.starting = true;
  try { // check the inputs with one request the page can read (EventSource hides errors)
    await Lab.get("/api/piecewise/train", { ...params, steps: 1 });
  } catch (err) {
    showError(err.message);
    return;
  } finally {
    state.starting = false;
  }
  state.offset = state.steps;
  const source = Lab.stream("/api/piecewise/run", params, (p) => {
    if (state.source === source) onPoint(p);
  }, () => { if (state.source === source) stop("paused"); });
  state.source = source;
  $("train").textContent = "Pause";
  setStatus("running");
}

async function guarded(fn) {
  showError("");
  try { await fn(); } catch (err) { showError(err.message); }
}

$("train").addEventListener("click", train);
$("reset").addEventListener("click", () => guarded(() => loadDefaults(state.kind,
  state.w.length)));
$("units").addEventListener("change", () => guarded(() => loadDefaults(state.kind,
  Number($("units").value))));
$("kind").addEventListener("change", () => guarded(() => loadDefaults($("kind").value)));
$("lr").addEventListener("change", saveState);
Lab.wireExports("piecewise", "plot", () => ({
  path: "/api/piecewise/model", params: { ...unitParams(), lr: $("lr").value.trim() },
}));

// At load: the units in the address if it has them (checked by the server, which answers
// with the numbers as it read them), else the defaults; a bad address is named, then the
// defaults are shown.
async function defaultCurve(kind) {
  const u = await Lab.get("/api/piecewise/defaults", { kind });
  return Lab.get("/api/piecewise/curve", { kind: u.kind, w: u.w.join(","), b: u.b.join(","),
    c: u.c.join(","), c0: u.c0 });
}

function show(body) {
  state.x = body.x; state.target = body.target;
  setUnits(body);
  draw(body);
}

async function start() {
  const q = Lab.query;
  if (q.has("lr")) $("lr").value = q.get("lr");
  const kind = q.get("kind") || "sigmoid";
  const names = ["kind", "w", "b", "c", "c0"];
  try {
    if (["w", "b", "c", "c0"].some((n) => q.has(n))) {
      show(await Lab.get("/api/piecewise/curve",
        Object.fromEntries(names.filter((n) => q.has(n)).map((n) => [n, q.get(n)]))));
    } else {
      show(await defaultCurve(kind));
    }
  } catch (err) {
    showError(err.message);
    show(await defaultCurve(KINDS.includes(kind) ? kind : "sigmoid"));
  }
  saveState();
}

setStatus("ready");
start();
