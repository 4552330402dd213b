// The /models panel: the settings live in the query string; Train streams one point per epoch
// (Server-Sent Events), each computed by the engine on the server (gradstep.lab.live).
"use strict";

const FIELDS = {  // query-string name -> control id
  model: "model", batch_size: "batch-size", lr: "lr", epochs: "epochs", seed: "seed",
  optimizer: "optimizer",
};
const state = { source: null, run: null, epochs: 0, overfitting: false };

function readSettings() {
  const s = {};
  for (const [name, id] of Object.entries(FIELDS)) s[name] = $(id).value.trim();
  return s;
}

function saveSettings() { Lab.save(readSettings()); }

function setOutput(id, value) {
  $(id).textContent = Lab.fmt(value);
  $(id).dataset.value = value === null || value === undefined ? "" : String(value);
}

function setStatus(kind, words) {
  const s = $("status");
  s.className = kind;
  s.textContent = words;
}

function statusWords(point) {
  if (point.status === "diverged") {
    return ["diverged", `diverged: ${point.message || "the error is no longer finite"} (try a smaller learning rate)`];
  }
  const base = point.status === "done" ? "done" : "training";
  if (point.overfitting) {
    return ["overfitting", `${base}; validation loss rising while training loss falls: overfitting`];
  }
  return [point.status === "done" ? "done" : "running", base];
}

// The plot is extended at most every 50 ms with the epochs that came meanwhile (a small model
// finishes hundreds of epochs a second).
const pending = { x: [], train: [], val: [], timer: null };

function flush() {
  pending.timer = null;
  if (!pending.x.length) return;
  Plotly.extendTraces("plot", { x: [pending.x, pending.x], y: [pending.train, pending.val] }, [0, 1]);
  pending.x = []; pending.train = []; pending.val = [];
}

function addPoint(p) {
  state.run = p.run;
  $("epoch-count").textContent = String(p.epoch);
  $("epoch-count").dataset.value = String(p.epoch);
  $("update-count").textContent = String(p.updates);
  $("update-count").dataset.value = String(p.updates);
  $("batches-per-epoch").textContent = String(p.batches_per_epoch);
  setOutput("train-loss", p.train_mae);
  setOutput("val-loss", p.val_mae);
  pending.x.push(p.epoch); pending.train.push(p.train_mae); pending.val.push(p.val_mae);
  if (!pending.timer) pending.timer = setTimeout(flush, 50);
  const [kind, words] = statusWords(p);
  setStatus(kind, words);
  return p.status;
}

function drawEmpty() {
  const trace = (name, color) => ({ type: "scatter", mode: "lines+markers", x: [], y: [], name,
    line: { color }, marker: { size: 4 } });
  const layout = {
    margin: { t: 10, r: 10, b: 45, l: 55 },
    xaxis: { title: { text: "epoch" }, rangemode: "tozero" },
    yaxis: { title: { text: "mean absolute error (\u00b0C)" }, rangemode: "tozero" },
    legend: { x: 1, xanchor: "right", y: 1 },
  };
  return Plotly.react("plot", [trace("training (2012-2014)", "#1f77b4"),
    trace("validation (2015, unseen)", "#d62728")], layout,
    { responsive: true, displaylogo: false });
}

function stopStream() {
  if (state.source) { state.source.close(); state.source = null; }
  $("train").textContent = "Train";
}

function clearReadouts() {
  clearTimeout(pending.timer);
  pending.timer = null; pending.x = []; pending.train = []; pending.val = [];
  for (const id of ["epoch-count", "update-count"]) { $(id).textContent = "0"; $(id).dataset.value = "0"; }
  $("batches-per-epoch").textContent = "-";
  setOutput("train-loss", null);
  setOutput("val-loss", null);
}

async function reset() {
  stopStream();
  state.run = null;
  clearReadouts();
  showEpochTotal();
  setStatus("ready", "ready");
  saveSettings();
  await drawEmpty();
}

function showEpochTotal() { $("epoch-total").textContent = $("epochs").value.trim() || "-"; }

async function train() {
  if (state.source) {  // Stop: the server stops after the epoch it is on
    stopStream();
    flush();
    setStatus("stopped", `stopped after epoch ${$("epoch-count").textContent}`);
    return;
  }
  Lab.showError("");
  const settings = readSettings();
  saveSettings();
  try {  // check the inputs with one request the page can read (EventSource hides errors)
    await Lab.get("/api/models/check", settings);
  } catch (err) {
    Lab.showError(err.message);
    return;
  }
  state.run = null;
  clearReadouts();
  showEpochTotal();
  await drawEmpty();
  setStatus("running", "training");
  const source = Lab.stream("/api/models/train", settings, (point) => {
    if (state.source !== source) return;
    const status = addPoint(point);
    if (status !== "running") { stopStream(); flush(); }
  }, () => {
    if (state.source !== source) return;
    stopStream(); flush();
    setStatus("stopped", "the stream ended early (the server stopped?)");
  });
  state.source = source;
  $("train").textContent = "Stop";
}

Lab.restore(FIELDS, (id) => {
  saveSettings();
  if (id === "epochs") showEpochTotal();
});
$("train").addEventListener("click", train);
$("reset").addEventListener("click", reset);
Lab.wireExports("models", "plot", () => ({
  path: "/api/models/model",
  params: { run: state.run || "", epoch: $("epoch-count").dataset.value || "" },
}));
showEpochTotal();
saveSettings();
drawEmpty();
