// The /optimizers panel: five optimizers from one start on the narrow valley. The settings live
// in the query string; Run asks the server for every path at once (one request, the library's
// optimizer_paths) and draws them over the contour map, with L - L* per step beside it.
"use strict";

const KEYS = ["gd", "momentum", "adagrad", "rmsprop", "adam"];
const COLORS = { gd: "#ff7f0e", momentum: "#2ca02c", adagrad: "#d62728", rmsprop: "#9467bd",
                 adam: "#e377c2" };
const FIRST_PATH = 3;  // contour, start and minimum come first on #plot
const state = { last: null, busy: false };

function settings() {
  const s = { steps: $("steps").value.trim(), w0: $("w0").value.trim(), b0: $("b0").value.trim() };
  for (const k of KEYS) s[`lr_${k}`] = $(`lr-${k}`).value.trim();
  return s;
}

function shown() {
  return KEYS.filter((k) => $(`show-${k}`).checked);
}

function saveState() {
  Lab.save({ ...settings(), show: shown().join(","), which: $("export-which").value });
}

function restore() {
  const q = Lab.query;
  for (const [name, id] of [["steps", "steps"], ["w0", "w0"], ["b0", "b0"]]) {
    if (q.get(name) !== null) $(id).value = q.get(name);
  }
  for (const k of KEYS) {
    if (q.get(`lr_${k}`) !== null) $(`lr-${k}`).value = q.get(`lr_${k}`);
  }
  if (q.get("show") !== null) {
    const on = q.get("show").split(",");
    for (const k of KEYS) $(`show-${k}`).checked = on.includes(k);
  }
  const which = q.get("which");
  if (which !== null && [...$("export-which").options].some((o) => o.value === which)) {
    $("export-which").value = which;
  }
}

function status(text, cls) {
  $("status").textContent = text;
  $("status").className = cls;
}

function put(id, text, value) {
  $(id).textContent = text;
  $(id).dataset.value = value === null || value === undefined ? "" : String(value);
}

function readouts(res) {
  const [lo, hi] = res.hessian_eigenvalues;
  put("eigenvalues", `${Lab.fmt(lo)} and ${Lab.fmt(hi)}`, `${lo},${hi}`);
  put("lr-limit", Lab.fmt(res.gd_lr_limit), res.gd_lr_limit);
  put("min-loss", Lab.fmt(res.min_loss), res.min_loss);
  for (const k of KEYS) {
    const r = res.settings[res.labels[k]];
    if (!r) continue;
    put(`used-lr-${k}`, Lab.fmt(r.hyperparameters.lr), r.hyperparameters.lr);
    const reach = r.steps_to_tolerance;
    const never = r.diverged ? `diverged at step ${r.diverged_at}` : "never";
    put(`reach-${k}`, reach === null ? never : String(reach), reach);
    put(`settled-${k}`, r.settled_at === null ? "never" : String(r.settled_at), r.settled_at);
    put(`final-${k}`, r.diverged ? "diverged" : Lab.fmt(r.final_loss), r.final_loss);
    put(`distance-${k}`, r.diverged ? "-" : Lab.fmt(r.final_distance), r.final_distance);
    $(`final-${k}`).classList.toggle("diverged", r.diverged);
    $(`reach-${k}`).classList.toggle("diverged", r.diverged);
  }
}

async function draw(res) {
  const g = res.grid;
  const contour = {
    type: "contour", x: g.w, y: g.b, z: g.log10_loss, colorscale: "Viridis", ncontours: 30,
    colorbar: { title: { text: "log10 L" } }, hoverinfo: "skip",
  };
  const start = { type: "scatter", mode: "markers", x: [res.start[0]], y: [res.start[1]],
    marker: { symbol: "square", size: 9, color: "white" }, name: "start", showlegend: false };
  const best = { type: "scatter", mode: "markers", x: [res.least_squares[0]],
    y: [res.least_squares[1]], marker: { symbol: "x", size: 12, color: "white" },
    name: "least squares", showlegend: false };
  const paths = [], curves = [];
  const on = shown();
  for (const k of KEYS) {
    const label = res.labels[k];
    const r = res.settings[label];
    const visible = on.includes(k);
    paths.push({ type: "scatter", mode: "lines", x: r.w, y: r.b, name: label, visible,
      line: { color: COLORS[k], width: 1.5 } });
    curves.push({ type: "scatter", mode: "lines", x: r.step, y: r.excess, name: label, visible,
      line: { color: COLORS[k], width: 1.5 } });
  }
  const tol = res.tolerance * res.min_loss;
  curves.push({ type: "scatter", mode: "lines", x: [0, res.steps], y: [tol, tol],
    name: "1% of L*", line: { color: "gray", dash: "dash", width: 1 } });
  const [[wl, wh], [bl, bh]] = [[g.w[0], g.w[g.w.length - 1]], [g.b[0], g.b[g.b.length - 1]]];
  const config = { responsive: true, displaylogo: false };
  await Plotly.react("plot", [contour, start, best, ...paths], {
    margin: { t: 10, r: 10, b: 40, l: 50 }, showlegend: true,
    legend: { x: 0, y: 1, bgcolor: "rgba(255,255,255,0.75)" },
    xaxis: { title: { text: "w" }, range: [wl, wh] }, yaxis: { title: { text: "b" }, range: [bl, bh] },
  }, config);
  await Plotly.react("curves", curves, {
    margin: { t: 10, r: 10, b: 40, l: 60 }, showlegend: true,
    xaxis: { title: { text: "step" } },
    yaxis: { title: { text: "L - L*" }, type: "log", exponentformat: "power" },
  }, config);
}

function toggle(k) {
  const visible = $(`show-${k}`).checked;
  $(`row-${k}`).classList.toggle("hidden-row", !visible);
  saveState();
  const i = KEYS.indexOf(k);
  if ($("plot").data && $("plot").data.length > FIRST_PATH + i) {
    Plotly.restyle("plot", { visible }, [FIRST_PATH + i]);
    Plotly.restyle("curves", { visible }, [i]);
  }
}

async function run() {
  if (state.busy) return;
  state.busy = true;
  Lab.showError("");
  saveState();
  const params = settings();
  status("running", "running");
  try {
    const res = await Lab.get("/api/optimizers/run", params);
    state.last = params;
    readouts(res);
    await draw(res);
    status(`${res.steps} steps from (${res.start[0]}, ${res.start[1]})`, "done");
  } catch (err) {
    Lab.showError(err.message);
    status("not run: see the error", "failed");
  } finally {
    state.busy = false;
  }
}

function resetDefaults() {
  for (const id of ["steps", "w0", "b0", ...KEYS.map((k) => `lr-${k}`)]) {
    $(id).value = $(id).defaultValue;
  }
  run();
}

restore();
for (const k of KEYS) {
  $(`show-${k}`).addEventListener("change", () => toggle(k));
  $(`row-${k}`).classList.toggle("hidden-row", !$(`show-${k}`).checked);
}
for (const id of ["steps", "w0", "b0", ...KEYS.map((k) => `lr-${k}`)]) {
  $(id).addEventListener("change", saveState);
  $(id).addEventListener("keydown", (ev) => { if (ev.key === "Enter") run(); });
}
$("export-which").addEventListener("change", saveState);
$("run").addEventListener("click", run);
$("defaults").addEventListener("click", resetDefaults);
Lab.wireExports("optimizers", "plot", () => {
  const which = $("export-which").value;
  const params = { ...(state.last || settings()), which };
  if (which === "best" && shown().length) params.optimizers = shown().join(",");
  return { path: "/api/optimizers/model", params };
});
run();
