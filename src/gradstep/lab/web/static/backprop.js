// The /backprop panel: the network drawn as SVG (every weight and bias clickable); the server
// rebuilds the network from the settings in the address and explains the chosen weight's
// gradient with the engine (gradstep.lab.backprop.explain_for_panel).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 640, HEIGHT = 410, CENTER_Y = 190, RADIUS = 18;
// The drawing's styles live inside the SVG, so the PNG export looks like the page.
const SVG_STYLE = `
  text { font: 13px system-ui, sans-serif; fill: #1d2430; pointer-events: none; }
  .neuron circle { fill: #f5f7fa; stroke: #5a6472; stroke-width: 1.5; }
  .neuron.route circle { stroke: #e8890c; stroke-width: 3.5; }
  .weight, .bias { cursor: pointer; }
  .weight .handle { stroke: #fff; stroke-width: 1.5; }
  .weight.route line { stroke-dasharray: 7 4; }
  .weight.route .handle { stroke: #e8890c; stroke-width: 2.5; }
  .weight.selected line { stroke: #111; }
  .weight.selected .handle { fill: #111; stroke: #111; r: 8; }
  .bias circle { fill: #fff; stroke-width: 2; }
  .bias.selected circle { fill: #111; stroke: #111; }
  .bias.selected text { fill: #fff; }
  .stub { stroke: #aab2bd; stroke-dasharray: 2 3; }
  .caption { font-size: 13px; }
  .layer-name { fill: #5a6472; font-size: 12px; }
`;

const query = Lab.query;
const state = {
  activation: query.get("activation") || "sigmoid",
  seed: query.get("seed") || "0",
  lr: query.get("lr") || "0.5",
  steps: (query.get("steps") || "").split(",").filter((s) => s !== ""),
  param: query.get("param") || null,
  index: query.get("index") || null,
  latest: 0,  // the newest request: an older answer that arrives late is dropped
  body: null,
};

function settings() {
  const s = { activation: state.activation, seed: state.seed, steps: state.steps.join(",") };
  if (state.param) { s.param = state.param; s.index = state.index; }
  return s;
}

function saveState() {
  Lab.save({ ...settings(), lr: state.lr });
}

// --- the drawing -------------------------------------------------------------------------

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function position(widths, layer, i) {
  const n = widths[layer];
  // different spacings in adjacent layers keep every weight's midpoint off every other line,
  // so each weight's handle (at its midpoint) can be clicked on its own
  const spacing = n === 3 ? 100 : 150;
  return [70 + layer * 165, CENTER_Y + (i - (n - 1) / 2) * spacing];
}

function neuronName(widths, layer, i) {
  if (layer === 0) return `x${i}`;
  if (layer === widths.length - 1) return widths[layer] === 1 ? "ŷ" : `ŷ${i}`;
  return `h${layer}.${i}`;
}

function colour(v) { return v >= 0 ? "#2f5f9e" : "#d1495b"; }

// each weight and bias carries its exact value, parameter and index (for tests and tools)
function exact(p) {
  return {
    "data-param": p.parameter, "data-index": p.index.join(","), "data-value": String(p.value),
  };
}

function selectable(g, param, index) {
  g.setAttribute("tabindex", "0");
  g.addEventListener("click", () => select(param, index));
  g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") select(param, index); });
}

function drawNetwork(net) {
  const svg = el("svg", { id: "network-svg", viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH, height: HEIGHT, xmlns: SVG_NS });
  el("style", {}, svg).textContent = SVG_STYLE;
  el("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: "#fff" }, svg);
  const w = net.widths;
  const biggest = Math.max(1e-12, ...net.weights.map((p) => Math.abs(p.value)),
    ...net.biases.map((p) => Math.abs(p.value)));
  const thick = (v) => (1 + 6 * Math.abs(v) / biggest).toFixed(2);
  const names = ["inputs", ...w.slice(1, -1).map((_, k) => `hidden ${k + 1}`), "output"];
  names.forEach((name, layer) => {
    const t = el("text", { x: position(w, layer, 0)[0], y: 22, "text-anchor": "middle",
      class: "layer-name" }, svg);
    t.textContent = name;
  });
  for (const p of net.weights) {
    const [x0, y0] = position(w, p.layer, p.in), [x1, y1] = position(w, p.layer + 1, p.out);
    const g = el("g", { id: p.id, class: "weight", ...exact(p) }, svg);
    el("title", {}, g).textContent = `${p.parameter}[${p.index}] = ${p.value}`;
    el("line", { x1: x0, y1: y0, x2: x1, y2: y1, stroke: colour(p.value),
      "stroke-width": thick(p.value) }, g);
    el("circle", { class: "handle", cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, r: 6,
      fill: colour(p.value) }, g);
    selectable(g, p.parameter, p.index);
  }
  for (let layer = 0; layer < w.length; layer++) {
    for (let i = 0; i < w[layer]; i++) {
      const [x, y] = position(w, layer, i);
      const g = el("g", { id: `neuron-${layer}-${i}`, class: "neuron" }, svg);
      el("circle", { cx: x, cy: y, r: RADIUS }, g);
      el("text", { x, y: y + 4.5, "text-anchor": "middle" }, g).textContent =
        neuronName(w, layer, i);
    }
  }
  for (const p of net.biases) {
    const [x, y] = position(w, p.layer + 1, p.out);
    el("line", { class: "stub", x1: x, y1: y - RADIUS, x2: x, y2: y - 36 + 9 }, svg);
    const g = el("g", { id: p.id, class: "bias", ...exact(p) }, svg);
    el("title", {}, g).textContent = `${p.parameter}[${p.index}] = ${p.value}`;
    el("circle", { cx: x, cy: y - 36, r: 9, stroke: colour(p.value) }, g);
    el("text", { x, y: y - 32, "text-anchor": "middle" }, g).textContent = "b";
    selectable(g, p.parameter, p.index);
  }
  el("text", { id: "caption", class: "caption", x: 14, y: HEIGHT - 34 }, svg);
  el("text", { id: "caption-2", class: "caption", x: 14, y: HEIGHT - 14 }, svg);
  $("network").replaceChildren(svg);
}

function mark(e) {
  const svg = $("network-svg");
  svg.querySelectorAll(".selected, .route").forEach((n) => n.classList.remove("selected", "route"));
  if (!e) {
    $("caption").textContent = "Click a weight (a line) or a bias (b) to explain its gradient.";
    $("caption-2").textContent = "";
    return;
  }
  const id = e.is_weight ? `weight-${e.layer}-${e.index[0]}-${e.index[1]}`
    : `bias-${e.layer}-${e.index[0]}`;
  $(id).classList.add("selected");
  for (const n of [...e.route.neurons, ...e.route.weights]) $(n).classList.add("route");
  $("caption").textContent = `dC/d ${e.parameter}[${e.index.join(", ")}] = Σ over samples of `
    + `forward dz/dw × backward dC/dz = ${Lab.fmt(e.sum)}`;
  $("caption-2").textContent = `engine .grad = ${Lab.fmt(e.engine)}   `
    + `(${state.activation}, seed ${state.seed}, ${state.steps.length} steps taken)`;
}

// --- the explanation -----------------------------------------------------------------------

function cell(tr, v, exact) {
  const td = document.createElement("td");
  td.textContent = typeof v === "number" ? Lab.fmt(v) : v;
  if (exact) td.dataset.value = String(v);
  tr.appendChild(td);
}

function explain(e, widths) {
  $("hint").hidden = Boolean(e);
  $("chosen").hidden = !e;
  if (!e) return;
  const k = e.layer, out = e.index[0];
  const target = neuronName(widths, k + 1, out);
  const where = `${e.parameter}[${e.index.join(", ")}]`;
  if (e.is_weight) {
    const source = neuronName(widths, k, e.index[1]);
    $("chosen-name").textContent = `weight ${where}: from ${source} into ${target}`;
    $("formula").textContent = "dC/dw = Σ over samples n of (dz/dw)ₙ × (dC/dz)ₙ, where z is "
      + `${target}'s weighted sum; forward: dz/dw = a = ${source}'s value for that sample `
      + `(the input this weight multiplies); backward: dC/dz = ${target}'s dC/dz from the `
      + "backward pass.";
  } else {
    $("chosen-name").textContent = `bias ${where} of ${target}`;
    $("formula").textContent = "dC/db = Σ over samples n of (dz/db)ₙ × (dC/dz)ₙ, where z is "
      + `${target}'s weighted sum;`
      + " forward: dz/db = 1 (a bias multiplies a constant 1); backward: dC/dz = "
      + `${target}'s dC/dz from the backward pass.`;
  }
  const body = $("terms").querySelector("tbody");
  body.replaceChildren();
  e.forward.forEach((f, n) => {
    const tr = document.createElement("tr");
    tr.dataset.sample = String(n);
    cell(tr, String(n), false);
    cell(tr, f, true);
    cell(tr, e.backward[n], true);
    cell(tr, e.products[n], true);
    body.appendChild(tr);
  });
  for (const [id, v] of [["sum", e.sum], ["engine-grad", e.engine]]) {
    $(id).textContent = Lab.fmt(v);
    $(id).dataset.value = String(v);
  }
  const agree = Math.abs(e.sum - e.engine) <= 1e-12 * Math.max(1, Math.abs(e.engine));
  $("match").textContent = agree ? "=" : "≠";
  $("match").className = agree ? "bp-eq" : "bp-eq differ";
  const through = e.route.neurons.slice().reverse()
    .map((id) => neuronName(widths, ...id.split("-").slice(1).map(Number)));
  $("route").textContent = through.length === 1
    ? `The backward term is ${target}'s own: it is the output neuron.`
    : `The backward term came from the output back through ${through.join(" → ")} `
      + "(outlined in orange, along the dashed weights).";
  explainRecursion(e, widths);
}

function explainRecursion(e, widths) {
  const box = $("recursion");
  box.replaceChildren();
  const p = document.createElement("p");
  p.textContent = `Its last backward step: ${e.recursion.rule}.`;
  box.appendChild(p);
  if (e.recursion.output) return;
  const ul = document.createElement("ul");
  for (const t of e.recursion.terms) {
    const li = document.createElement("li");
    const name = neuronName(widths, ...t.neuron.split("-").slice(1).map(Number));
    li.textContent = `${name}: w = ${Lab.fmt(t.weight)}, its dC/dz per sample = `
      + t.backward.map(Lab.fmt).join(", ");
    ul.appendChild(li);
  }
  box.appendChild(ul);
}

function showData(d) {
  const body = $("data").querySelector("tbody");
  body.replaceChildren();
  d.x.forEach((x, n) => {
    const tr = document.createElement("tr");
    cell(tr, String(n), false);
    cell(tr, x[0], true);
    cell(tr, x[1], true);
    cell(tr, d.y[n], true);
    cell(tr, d.prediction[n], true);
    body.appendChild(tr);
  });
}

function render(body) {
  state.body = body;
  state.steps = body.steps.map(String);
  drawNetwork(body.network);
  mark(body.explanation);
  explain(body.explanation, body.network.widths);
  showData(body.data);
  $("step-count").textContent = String(body.steps.length);
  $("loss").textContent = Lab.fmt(body.loss);
  $("loss").dataset.value = String(body.loss);
  saveState();
}

// --- requests ------------------------------------------------------------------------------

async function load(path, extra) {
  const ticket = ++state.latest;
  Lab.showError("");
  try {
    const body = await Lab.get(path, { ...settings(), ...(extra || {}) });
    if (ticket === state.latest) render(body);
  } catch (err) {
    if (ticket !== state.latest) return;
    Lab.showError(err.message);
    saveState();
    // a bad selection (say, a link to a weight that is not there) must not hide the network
    if (state.param && !state.body && /^(param|index)\b/.test(err.message)) {
      state.param = null; state.index = null;
      const message = err.message;
      await load("/api/backprop/network");
      Lab.showError(message);
    }
  }
}

function select(param, index) {
  state.param = param;
  state.index = index.join(",");
  load("/api/backprop/network");
}

function readControls() {
  state.activation = $("activation").value;
  state.seed = $("seed").value.trim();
  state.lr = $("lr").value.trim();
}

function newNetwork() {  // another activation or seed: a fresh network, no steps taken
  readControls();
  state.steps = [];
  state.body = null;
  load("/api/backprop/network");
}

// --- the PNG export: the SVG drawn on a canvas (Plotly's export is for Plotly plots) -------

function savePng() {
  const svg = $("network-svg");
  if (!svg) return;
  const text = new XMLSerializer().serializeToString(svg);
  const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  const img = new Image();
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = 2 * WIDTH; canvas.height = 2 * HEIGHT;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    URL.revokeObjectURL(url);
    canvas.toBlob((blob) => {
      const href = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = href; a.download = "backprop.png";
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 1000);
    }, "image/png");
  };
  img.onerror = () => Lab.showError("the figure could not be drawn as PNG");
  img.src = url;
}

$("activation").value = state.activation;
$("seed").value = state.seed;
$("lr").value = state.lr;
$("activation").addEventListener("change", newNetwork);
$("seed").addEventListener("change", newNetwork);
$("lr").addEventListener("change", () => { readControls(); saveState(); });
$("step").addEventListener("click", () => {
  readControls();
  load("/api/backprop/step", { lr: state.lr });
});
$("reset").addEventListener("click", () => {
  readControls();
  state.steps = [];
  load("/api/backprop/network");
});
Lab.wireExports(
  "backprop", "network", () => ({ path: "/api/backprop/model", params: settings() }), savePng,
);
load("/api/backprop/network");
