// What every panel's script shares: element lookup, number formatting, the error line, the
// state in the address bar, the JSON API, live streams, and the two export buttons.
"use strict";

const $ = (id) => document.getElementById(id);

const Lab = {
  query: new URLSearchParams(location.search),

  fmt(v) {
    if (v === null || v === undefined) return "-";
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e6 || a < 1e-4) ? v.toExponential(4) : v.toPrecision(6);
  },

  showError(message) {
    const e = $("error");
    e.textContent = message || "";
    e.hidden = !message;
  },

  // The page's settings live in the address, so a link shares them (as Playground does).
  save(settings) {
    history.replaceState(null, "", `${location.pathname}?${new URLSearchParams(settings)}`);
  },

  // Fill each control from the address (query name -> control id) and call onChange(id, name) when
  // the user changes it; a select given a value it does not offer keeps its default, and says so.
  restore(fields, onChange) {
    for (const [name, id] of Object.entries(fields)) {
      const v = Lab.query.get(name);
      if (v !== null) {
        const before = $(id).value;
        $(id).value = v;
        if ($(id).value === "") {
          $(id).value = before;
          const given = JSON.stringify(v);
          Lab.showError(`${name} ${given} in the address is not offered; using ${before}`);
        }
      }
      $(id).addEventListener("change", () => onChange(id, name));
    }
  },

  async get(path, params) {
    const r = await fetch(`${path}?${new URLSearchParams(params || {})}`, {
      headers: { accept: "application/json" },
    });
    return Lab.read(r);
  },

  async post(path, body) {
    const r = await fetch(path, {
      method: "POST",
      headers: { accept: "application/json", "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return Lab.read(r);
  },

  async read(r) {
    let body;
    try { body = await r.json(); } catch (e) { throw new Error(`HTTP ${r.status}`); }
    if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
    return body;
  },

  // A live stream (Server-Sent Events): onPoint gets each update; onEnd once, when the server
  // ends the stream or the connection drops. Returns the source (close() stops it).
  stream(path, params, onPoint, onEnd) {
    const source = new EventSource(`${path}?${new URLSearchParams(params)}`);
    let ended = false;
    const end = () => { if (!ended) { ended = true; source.close(); onEnd(); } };
    source.onmessage = (ev) => onPoint(JSON.parse(ev.data));
    source.addEventListener("end", end);
    source.addEventListener("failed", (ev) => { Lab.showError(JSON.parse(ev.data).error); end(); });
    source.onerror = end;
    return source;
  },

  // The two buttons every panel has: the figure as PNG (drawn by Plotly in the page) and the
  // model as a gradstep checkpoint (written by the server; gradstep.load reads it).
  // savePng: the panel's own PNG export, for a figure that is not a Plotly plot.
  wireExports(name, plotId, modelRequest, savePng) {
    $("export-png").addEventListener("click", savePng || (() => {
      Plotly.downloadImage(plotId, { format: "png", filename: name, width: 1000, height: 600 });
    }));
    $("export-model").addEventListener("click", async () => {
      Lab.showError("");
      try {
        const { path, params, body } = modelRequest();
        const r = body === undefined
          ? await fetch(`${path}?${new URLSearchParams(params || {})}`)
          : await fetch(path, { method: "POST", headers: { "content-type": "application/json" },
                                body: JSON.stringify(body) });
        if (!r.ok) { await Lab.read(r); return; }
        const url = URL.createObjectURL(await r.blob());
        const a = document.createElement("a");
        a.href = url; a.download = `${name}.safetensors`;
        document.body.appendChild(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      } catch (err) {
        Lab.showError(err.message);
      }
    });
  },
};
