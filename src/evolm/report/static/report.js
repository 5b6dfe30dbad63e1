/* evolm report: draws every view from the JSON block #evolm-data with Plotly (inlined above).
   Plain JavaScript, no build step, no network. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("evolm-data").textContent);
  var app = document.getElementById("app");
  var nav = document.getElementById("nav");
  var PCONF = { displaylogo: false, responsive: true, displayModeBar: false };
  var PCONF_BAR = { displaylogo: false, responsive: true, displayModeBar: true,
                    modeBarButtonsToRemove: ["sendDataToCloud", "lasso2d", "select2d"] };
  var AXES = { llm_calls: "LLM calls", evaluations: "evaluations", tokens: "tokens", elapsed: "time (s)" };
  var METRICS = { qd_score: "QD score", coverage: "coverage", max_fitness: "best fitness",
                  mean_fitness: "mean fitness" };
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"];
  var state = { run: 0, axis: "llm_calls", group: "arm", snap: null, xd: 0, yd: 1 };

  /* ---------- small helpers ---------- */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined) return;
        if (k === "text") node.textContent = v;
        else if (k === "html") node.innerHTML = v;
        else if (k === "class") node.className = v;
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return "–";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString("en-US");
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
    return Number(v.toPrecision(digits || 4)).toString();
  }
  function pct(k, n) { return n ? (100 * k / n).toFixed(1) + " %" : "–"; }
  function pm(s) {
    if (!s || s.mean === null) return "–";
    return s.half === null ? fmt(s.mean) + " (n=" + s.n + ")" : fmt(s.mean) + " ± " + fmt(s.half);
  }
  function section(id, title) {
    var s = el("section", { id: id }, el("h2", { text: title }));
    app.appendChild(s);
    return s;
  }
  function plotDiv(id, tall) { return el("div", { id: id, class: tall ? "plot tall" : "plot" }); }
  function select(options, value, onchange) {
    var s = el("select", { onchange: function () { onchange(s.value); } });
    options.forEach(function (o) {
      var opt = el("option", { value: String(o[0]), text: o[1] });
      if (String(o[0]) === String(value)) opt.selected = true;
      s.appendChild(opt);
    });
    return s;
  }
  function table(headers, rows, opts) {
    opts = opts || {};
    var t = el("table", { class: opts.cls || "" });
    var tr = el("tr");
    headers.forEach(function (h) { tr.appendChild(el("th", { text: h, class: opts.num && opts.num[h] ? "num" : null })); });
    t.appendChild(el("thead", null, tr));
    var tb = el("tbody");
    rows.forEach(function (r, i) {
      var row = el("tr");
      r.forEach(function (c, j) {
        var td = el("td", { class: opts.num && opts.num[headers[j]] ? "num" : null });
        if (c instanceof Node) td.appendChild(c); else td.textContent = c;
        row.appendChild(td);
      });
      if (opts.onclick) row.addEventListener("click", function () { opts.onclick(i, row); });
      if (opts.ids) row.setAttribute("data-id", opts.ids[i]);
      tb.appendChild(row);
    });
    t.appendChild(tb);
    return t;
  }
  function layout(title, xt, yt, extra) {
    var l = { title: { text: title, font: { size: 14 }, x: 0.02, xanchor: "left" },
              margin: { l: 60, r: 20, t: 40, b: 80 },
              xaxis: { title: { text: xt } }, yaxis: { title: { text: yt } },
              legend: { orientation: "h", y: -0.32, yanchor: "top" }, hovermode: "closest" };
    return Object.assign(l, extra || {});
  }
  function run() { return D.runs[state.run]; }
  function resumeShapes(r, axis) {
    return (r.resumes || []).filter(function (m) { return m[axis] !== undefined; }).map(function (m) {
      return { type: "line", xref: "x", yref: "paper", x0: m[axis], x1: m[axis], y0: 0, y1: 1,
               line: { dash: "dot", color: "#c0392b", width: 1 } };
    });
  }

  /* ---------- navigation ---------- */
  function buildNav() {
    nav.innerHTML = "";
    var links = [["summary", "Summary"], ["archive", "Archive"], ["curves", "Curves"],
                 ["operators", "Operators"], ["failures", "Failures"], ["best", "Best elites"],
                 ["elite-section", "Elite"], ["finetune", "Fine-tuning"]];
    if (D.compare) links.unshift(["compare", "Compare runs"]);
    links.forEach(function (l) { nav.appendChild(el("a", { href: "#" + l[0], text: l[1] })); });
    if (D.runs.length > 1) {
      nav.appendChild(el("label", { class: "muted" }, "run ",
        select(D.runs.map(function (r, i) { return [i, r.name + " (seed " + r.info.seed + ")"]; }),
               state.run, function (v) { state.run = +v; renderRun(); })));
    }
  }

  /* ---------- summary ---------- */
  function renderSummary(r) {
    var s = section("summary", "Summary: " + r.name);
    var info = r.info, t = r.totals, last = function (k) { var a = r.series[k]; return a.length ? a[a.length - 1] : null; };
    var statusCounts = Object.keys(t.programs).sort().map(function (k) { return k + " " + fmt(t.programs[k]); }).join(", ");
    var llm = t.llm;
    var rows = [
      ["file", r.path],
      ["state", el("span", { class: "badge " + info.state, text: info.state })],
      ["domain", info.domain + " " + JSON.stringify(info.domain_params)],
      ["seed", String(info.seed)],
      ["archive", info.archive + " " + JSON.stringify(info.archive_params)],
      ["operators", info.operators.join(", ") + (info.operators.length + info.models.length > 2 ? " (" + info.bandit + ")" : "")],
      ["models", info.models.join(", ")],
      ["programs", statusCounts],
      ["LLM calls", fmt(llm.calls) + (llm.judge_calls ? " + " + fmt(llm.judge_calls) + " judge" : "") +
        " (" + fmt(llm.errors) + " failed), tokens in " + fmt(llm.tokens_in) + ", out " + fmt(llm.tokens_out) +
        ", cost $" + (llm.cost || 0).toFixed(4)],
      ["evaluations", fmt(t.evaluations.evaluations) + " (" + fmt(t.evaluations.wall_time) + " s wall)"],
      ["batches told", fmt(t.batches)],
      ["elites", fmt(t.elites)],
      ["QD score", fmt(last("qd_score"))],
      ["coverage", last("coverage") === null ? "–" : (100 * last("coverage")).toFixed(1) + " %"],
      ["best fitness", fmt(last("max_fitness"))],
      ["elapsed", fmt(last("elapsed")) + " s"]
    ];
    if (r.end) rows.push(["ended", r.end.status + ": " + r.end.reason]);
    if (r.resumes.length) {
      rows.push(["resumed", r.resumes.map(function (m) {
        return "from batch " + m.from_batch + (m.dropped_in_flight ? " (" + m.dropped_in_flight + " in-flight programs dropped)" : "");
      }).join("; ") + " — dotted red lines on the curves"]);
    }
    if (info.sandbox) rows.push(["evaluation", info.sandbox.evaluator + (info.sandbox.tier ? ", " + info.sandbox.tier + " tier" : "")]);
    s.appendChild(table(["", ""], rows, { cls: "kv" }));
    if (r.notes.length) {
      var ul = el("ul", { class: "notes" });
      r.notes.forEach(function (n) { ul.appendChild(el("li", { text: n })); });
      s.appendChild(ul);
    }
    s.appendChild(el("details", null, el("summary", { class: "note", text: "configuration" }),
      el("pre", { text: JSON.stringify(info.config, null, 2) })));
  }

  /* ---------- archive ---------- */
  function unravel(cell, dims) {
    var out = new Array(dims.length);
    for (var k = dims.length - 1; k >= 0; k--) { out[k] = cell % dims[k]; cell = Math.floor(cell / dims[k]); }
    return out;
  }
  function centers(lo, hi, n) {
    var out = []; for (var k = 0; k < n; k++) out.push(+(lo + (k + 0.5) * (hi - lo) / n).toPrecision(4));
    return out;
  }
  function archiveRange(a) {
    var fin = a.snapshots[a.snapshots.length - 1].fit, lo = Infinity, hi = -Infinity;
    a.snapshots.forEach(function (s) { s.fit.forEach(function (f) { if (f < lo) lo = f; if (f > hi) hi = f; }); });
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (lo === hi) { hi = lo + 1e-9; }
    return [lo, hi, fin.length];
  }
  function renderArchive(r) {
    var a = r.archive, s = section("archive", "Archive");
    var dim = a.names.length;
    if (state.xd >= dim) state.xd = 0;
    if (state.yd >= dim || state.yd === state.xd) state.yd = dim > 1 ? (state.xd === 0 ? 1 : 0) : 0;
    state.snap = a.snapshots.length - 1;
    var c = el("div", { class: "controls" });
    var dimOpts = a.names.map(function (n, i) { return [i, n]; });
    if (dim > 1) {
      c.appendChild(el("label", null, "x ", select(dimOpts, state.xd, function (v) { state.xd = +v; if (state.yd === state.xd) state.yd = state.xd === 0 ? 1 : 0; drawArchive(); })));
      c.appendChild(el("label", null, "y ", select(dimOpts, state.yd, function (v) { state.yd = +v; if (state.yd === state.xd) state.xd = state.yd === 0 ? 1 : 0; drawArchive(); })));
    }
    var snapLabel = el("span", { id: "snap-label" });
    if (a.snapshots.length > 1) {
      var slider = el("input", { type: "range", id: "snap-slider", min: "0", max: String(a.snapshots.length - 1),
                                 value: String(state.snap), step: "1" });
      slider.addEventListener("input", function () { state.snap = +slider.value; drawArchive(); });
      c.appendChild(el("label", null, "archive after ", slider));
    }
    c.appendChild(snapLabel);
    s.appendChild(c);
    s.appendChild(plotDiv("heatmap", true));
    s.appendChild(el("p", { class: "note", text:
      (a.mode === "grid" ? "Each cell shows its elite's fitness" + (dim > 2 ? " (the best over the descriptors not shown)" : "") :
       a.mode === "cvt" ? "CVT centroids (grey: empty), coloured by their elite's fitness" :
       "Elites at their descriptors, coloured by fitness") + ". Click a cell to show its elite, code and lineage below." }));
    drawArchive();
  }
  function drawArchive() {
    var r = run(), a = r.archive, snap = a.snapshots[state.snap], div = document.getElementById("heatmap");
    var range = archiveRange(a), dim = a.names.length, xd = state.xd, yd = dim > 1 ? state.yd : null;
    var label = document.getElementById("snap-label");
    label.textContent = "batch " + snap.batch + (snap.evaluations !== null ? ", " + fmt(snap.evaluations) + " evaluations" : "") +
      (snap.llm_calls !== null ? ", " + fmt(snap.llm_calls) + " LLM calls" : "") + ": " + snap.ids.length + " elites";
    var traces, xl = a.names[xd], yl = yd === null ? "" : a.names[yd], filled = 0, extra = {};
    var hover = a.names[xd] + ": %{x}<br>" + (yd === null ? "fitness" : a.names[yd]) + ": %{y}<br>fitness %{marker.color}<br>program %{customdata}<extra></extra>";
    if (a.mode === "grid") {
      var nx = a.dims[xd], ny = yd === null ? 1 : a.dims[yd];
      var z = [], ids = [];
      for (var j = 0; j < ny; j++) { z.push(new Array(nx).fill(null)); ids.push(new Array(nx).fill(null)); }
      for (var k = 0; k < snap.ids.length; k++) {
        var co = unravel(snap.cell[k], a.dims), i = co[xd], jj = yd === null ? 0 : co[yd];
        if (z[jj][i] === null || snap.fit[k] > z[jj][i]) { if (z[jj][i] === null) filled++; z[jj][i] = snap.fit[k]; ids[jj][i] = snap.ids[k]; }
      }
      traces = [{ type: "heatmap", z: z, customdata: ids, x: centers(a.bounds[xd][0], a.bounds[xd][1], nx),
                  y: yd === null ? [""] : centers(a.bounds[yd][0], a.bounds[yd][1], ny), colorscale: "Viridis",
                  zmin: range[0], zmax: range[1], hoverongaps: false, xgap: 1, ygap: 1,
                  colorbar: { title: { text: "fitness" } },
                  hovertemplate: xl + ": %{x}<br>" + (yl ? yl + ": %{y}<br>" : "") + "fitness %{z}<br>program %{customdata}<extra></extra>" }];
      extra = { xaxis: { title: { text: xl }, range: [a.bounds[xd][0], a.bounds[xd][1]] },
                yaxis: { title: { text: yl }, range: yd === null ? undefined : [a.bounds[yd][0], a.bounds[yd][1]] } };
    } else {
      var pts = a.mode === "cvt" ? snap.cell.map(function (c) { return a.centroids[c]; }) : snap.desc;
      var fy = function (p, k) { return yd === null ? snap.fit[k] : p[yd]; };
      traces = [];
      if (a.mode === "cvt") {
        traces.push({ type: "scatter", mode: "markers", name: "empty cell", hoverinfo: "skip",
                      x: a.centroids.map(function (p) { return p[xd]; }),
                      y: a.centroids.map(function (p) { return yd === null ? range[0] : p[yd]; }),
                      marker: { color: "#d5d9e0", size: 5 } });
      }
      traces.push({ type: "scatter", mode: "markers", name: "elite", customdata: snap.ids,
                    x: pts.map(function (p) { return p[xd]; }), y: pts.map(fy),
                    marker: { color: snap.fit, colorscale: "Viridis", cmin: range[0], cmax: range[1], size: 9,
                              colorbar: { title: { text: "fitness" } }, line: { width: 0.5, color: "#333" } },
                    hovertemplate: hover });
      filled = snap.ids.length;
      var pad = function (b) { var d = 0.03 * (b[1] - b[0]); return [b[0] - d, b[1] + d]; };
      extra = { showlegend: false, xaxis: { title: { text: xl }, range: pad(a.bounds[xd]) },
                yaxis: yd === null ? { title: { text: "fitness" } } : { title: { text: yl }, range: pad(a.bounds[yd]) } };
    }
    div.setAttribute("data-cells", String(filled));
    Plotly.react(div, traces, layout("", xl, yl, extra), PCONF_BAR).then(function () {
      if (!div._evolmClick) {
        div._evolmClick = true;
        div.on("plotly_click", function (ev) {
          var p = ev && ev.points && ev.points[0];
          if (p && p.customdata !== null && p.customdata !== undefined) showElite(+p.customdata);
        });
      }
    });
  }

  /* ---------- curves ---------- */
  function renderCurves(r) {
    var s = section("curves", "Search progress");
    var axes = Object.keys(AXES).map(function (k) { return [k, AXES[k]]; });
    s.appendChild(el("div", { class: "controls" }, el("label", null, "x axis ",
      select(axes, state.axis, function (v) { state.axis = v; drawCurves(); drawOperators(); }))));
    var g = el("div", { class: "grid3" }, plotDiv("curve-qd"), plotDiv("curve-coverage"), plotDiv("curve-fitness"));
    s.appendChild(g);
    drawCurves();
  }
  function drawCurves() {
    var r = run(), x = r.series[state.axis], ax = AXES[state.axis], shapes = resumeShapes(r, state.axis);
    var line = function (y, name, color) { return { type: "scatter", mode: "lines", x: x, y: y, name: name, line: { color: color, shape: "hv" } }; };
    Plotly.react("curve-qd", [line(r.series.qd_score, "QD score", COLORS[0])], layout("QD score", ax, "QD score", { shapes: shapes, showlegend: false }), PCONF);
    Plotly.react("curve-coverage", [line(r.series.coverage, "coverage", COLORS[2])], layout("Coverage", ax, "filled share of cells", { shapes: shapes, showlegend: false, yaxis: { tickformat: ".0%", title: { text: "coverage" } } }), PCONF);
    Plotly.react("curve-fitness", [line(r.series.max_fitness, "best", COLORS[3]), line(r.series.mean_fitness, "mean of elites", COLORS[1])],
                 layout("Best and mean fitness", ax, "fitness", { shapes: shapes }), PCONF);
  }

  /* ---------- operators, cost and the bandit's mix ---------- */
  function armGroups(w) {
    var out = {};
    Object.keys(w.arms).forEach(function (label) {
      var parts = label.split("@"), key = state.group === "operator" ? parts[0] : state.group === "model" ? (parts[1] || "-") : label;
      var src = w.arms[label], dst = out[key];
      if (!dst) { dst = out[key] = {}; Object.keys(src).forEach(function (k) { dst[k] = src[k].slice(); }); }
      else Object.keys(src).forEach(function (k) { src[k].forEach(function (v, i) { dst[k][i] += v; }); });
    });
    return out;
  }
  function renderOperators(r) {
    var s = section("operators", "Operators and models");
    s.appendChild(el("div", { class: "controls" }, el("label", null, "per ",
      select([["arm", "operator × model"], ["operator", "operator"], ["model", "model"]], state.group,
             function (v) { state.group = v; drawOperators(); })),
      el("span", { text: "rates per window of batches (ELM Fig. 11c); x axis as chosen under Search progress" })));
    s.appendChild(el("div", { class: "grid3" }, plotDiv("op-parsed"), plotDiv("op-valid"), plotDiv("op-inserted")));
    s.appendChild(el("div", { class: "grid2" }, plotDiv("op-mix"), plotDiv("op-cost")));
    var tot = r.arm_totals, labels = Object.keys(tot).sort();
    var rows = labels.map(function (l) {
      var a = tot[l], n = a.chosen || 0, parts = l.split("@");
      return [parts[0], parts[1] || "-", fmt(n), pct(a.parsed || 0, n), pct(a.valid || 0, n), pct(a.inserted || 0, n), fmt(a.cost || 0)];
    });
    s.appendChild(el("h3", { text: "Totals per arm" }));
    s.appendChild(rows.length ? table(["operator", "model", "candidates", "parsed", "valid", "inserted", "cost"], rows,
      { num: { candidates: 1, parsed: 1, valid: 1, inserted: 1, cost: 1 } }) : el("p", { class: "note", text: "no operator batches told yet" }));
    if (r.end && r.end.selector && Object.keys(r.end.selector).length) {
      s.appendChild(el("details", null, el("summary", { class: "note", text: "the selector's state at the end (" + r.info.bandit + ")" }),
        el("pre", { text: JSON.stringify(r.end.selector, null, 2) })));
    }
    drawOperators();
  }
  function drawOperators() {
    var r = run(), w = r.windows, groups = armGroups(w), keys = Object.keys(groups).sort();
    var x = w[state.axis] || w.llm_calls, ax = AXES[state.axis];
    ["parsed", "valid", "inserted"].forEach(function (what) {
      var traces = keys.map(function (k, i) {
        var g = groups[k];
        return { type: "scatter", mode: "lines+markers", name: k, x: x, line: { color: COLORS[i % 10] },
                 y: g.chosen.map(function (n, j) { return n ? g[what][j] / n : null; }) };
      });
      Plotly.react("op-" + what, traces, layout(what.charAt(0).toUpperCase() + what.slice(1) + " rate", ax, "share of candidates",
        { yaxis: { range: [0, 1.02], tickformat: ".0%" } }), PCONF);
    });
    var mix = keys.map(function (k, i) {
      return { type: "scatter", mode: "lines", stackgroup: "one", groupnorm: "percent", name: k, x: x,
               y: groups[k].chosen, line: { color: COLORS[i % 10] } };
    });
    Plotly.react("op-mix", mix, layout("Mix of candidates (bandit: " + r.info.bandit + ")", ax, "% of the window's candidates"), PCONF);
    var usd = r.totals.llm.cost > 0, s = r.series;
    Plotly.react("op-cost", [{ type: "scatter", mode: "lines", x: s[state.axis], y: usd ? s.cost : s.tokens, name: usd ? "cost" : "tokens",
                               line: { color: COLORS[4], shape: "hv" } }],
                 layout(usd ? "Cost (USD)" : "Tokens spent", ax, usd ? "USD" : "tokens", { showlegend: false, shapes: resumeShapes(r, state.axis) }), PCONF);
  }

  /* ---------- failures ---------- */
  function renderFailures(r) {
    var s = section("failures", "Failure taxonomy");
    var f = r.failures, n = Object.values(r.totals.programs).reduce(function (a, b) { return a + b; }, 0);
    if (!f.total) { s.appendChild(el("p", { class: "note", text: "No candidate failed." })); return; }
    s.appendChild(table(["status", "programs", "share of all"], Object.keys(f.by_status).map(function (k) {
      return [k, fmt(f.by_status[k]), pct(f.by_status[k], n)];
    }), { num: { programs: 1, "share of all": 1 } }));
    var rows = f.groups.map(function (g) {
      return [g.status, g.reason, fmt(g.count), pct(g.count, f.total),
              el("details", { class: "example" }, el("summary", { text: "program " + g.example_id }), el("pre", { text: g.example || "(no message)" }))];
    });
    f.other.forEach(function (o) { rows.push([o.status, "(" + o.groups + " smaller groups)", fmt(o.count), pct(o.count, f.total), ""]); });
    s.appendChild(el("h3", { text: "Grouped by reason (line numbers, names and numbers replaced)" }));
    s.appendChild(table(["status", "reason", "count", "share of failures", "example"], rows, { num: { count: 1, "share of failures": 1 } }));
  }

  /* ---------- best elites and the elite panel ---------- */
  function descText(r, ds) {
    return ds.map(function (v, i) { return r.archive.names[i] + "=" + fmt(v, 3); }).join(", ");
  }
  function renderBest(r) {
    var s = section("best", "Best elites");
    var ids = r.best;
    if (!ids.length) { s.appendChild(el("p", { class: "note", text: "The archive holds no elite." })); return; }
    var rows = ids.map(function (id, i) {
      var e = r.elites[id];
      return [String(i + 1), "#" + id, fmt(e.fitness, 6), descText(r, e.descriptors), e.operator + (e.model ? "@" + e.model : ""), String(e.generation)];
    });
    s.appendChild(table(["rank", "program", "fitness", "descriptors", "operator", "generation"], rows,
      { cls: "clickable", ids: ids, num: { fitness: 1, generation: 1 }, onclick: function (i) { showElite(ids[i]); } }));
    s.appendChild(el("p", { class: "note", text: "Click a row (or an archive cell) to show the elite." }));
  }
  function renderEliteSection(r) {
    var s = section("elite-section", "Elite");
    s.appendChild(el("div", { id: "elite" }, el("p", { class: "empty", text: "Click a cell of the archive or a row of the best elites." })));
  }
  function diffPre(text) {
    var pre = el("pre", { class: "diff" });
    text.split("\n").forEach(function (ln) {
      var cls = ln.slice(0, 3) === "+++" || ln.slice(0, 3) === "---" ? "hunk" : ln[0] === "+" ? "add" : ln[0] === "-" ? "del" : ln.slice(0, 2) === "@@" ? "hunk" : null;
      pre.appendChild(cls ? el("span", { class: cls, text: ln }) : document.createTextNode(ln + "\n"));
    });
    return pre;
  }
  function lineageNode(r, id, seen, depth) {
    var n = r.lineage[id];
    if (!n) return el("li", { class: "muted", text: "#" + id + " (beyond the report's lineage limit)" });
    if (seen[id]) return el("li", { class: "muted", text: "#" + id + " (shown above)" });
    seen[id] = true;
    var sum = el("summary", null, "#" + id + " ", el("span", { class: "op", text: n.operator + (n.model ? "@" + n.model : "") }),
      " · gen " + n.generation + " · batch " + n.batch + " · fitness " + fmt(n.fitness, 6) + " · ",
      el("span", { class: "st-" + n.status, text: n.status }),
      n.parents.length > 1 ? " · parents " + n.parents.map(function (p) { return "#" + p; }).join(", ") : "");
    var body = n.diff === null ? el("div", null, el("p", { class: "note", text: n.parents.length ? "parent not in the run database" : "seed program (no parent)" }), el("pre", { text: n.code || "" }))
                               : (n.diff ? diffPre(n.diff) : el("p", { class: "note", text: "same code as its first parent" }));
    var det = el("details", depth === 0 ? { open: "" } : null, sum, body);
    var li = el("li", null, det);
    if (n.parents.length) {
      if (n.cut) li.appendChild(el("p", { class: "note", text: "older ancestors left out (report limits)" }));
      var ul = el("ul");
      n.parents.forEach(function (p) { if (r.lineage[p] || !n.cut) ul.appendChild(lineageNode(r, p, seen, depth + 1)); });
      if (ul.childNodes.length) li.appendChild(ul);
    }
    return li;
  }
  function showElite(id) {
    var r = run(), box = document.getElementById("elite"), e = r.elites[id];
    box.innerHTML = "";
    box.setAttribute("data-program", String(id));
    document.querySelectorAll("tr.selected").forEach(function (t) { t.classList.remove("selected"); });
    var row = document.querySelector("#best tr[data-id='" + id + "']");
    if (row) row.classList.add("selected");
    if (!e) {
      box.appendChild(el("h3", { text: "Program #" + id }));
      box.appendChild(el("p", { class: "note", text: "This program is not among the " + Object.keys(r.elites).length +
        " elites of the final archive the report carries code for (it was replaced later, or the report's --max-elites cut it)." }));
      if (r.lineage[id]) box.appendChild(el("ul", { class: "tree" }, lineageNode(r, id, {}, 0)));
      box.scrollIntoView({ block: "start" });
      return;
    }
    box.appendChild(el("h3", { text: "Program #" + id + " · fitness " + fmt(e.fitness, 8) }));
    box.appendChild(table(["", ""], [
      ["descriptors", descText(r, e.descriptors)],
      ["cell", e.cell === null ? "–" : String(e.cell)],
      ["operator", e.operator + (e.model ? " @ " + e.model : "")],
      ["generation / batch", e.generation + " / " + e.batch],
      ["parents", e.parents.length ? e.parents.map(function (p) { return "#" + p; }).join(", ") : "none (seed)"]
    ], { cls: "kv" }));
    if (e.view) {
      var view = el("div", { class: "view", html: e.view });
      /* the panel already shows the summary line and the code: drop the view's copies */
      view.querySelectorAll("p.evolm-summary").forEach(function (p) { p.remove(); });
      view.querySelectorAll("figure.evolm-code").forEach(function (f) {
        var c = f.querySelector("code");
        if (c && c.textContent.trim() === e.code.trim()) f.remove();
      });
      box.appendChild(view);
    }
    if (e.animation) box.appendChild(el("div", { class: "view", html: e.animation }));
    box.appendChild(el("h3", { text: "Code" + (e.code_cut ? " (first " + e.code.length + " characters; " + e.code_cut + " more not shown)" : "") }));
    box.appendChild(el("pre", { class: "code", text: e.code }));
    box.appendChild(el("h3", { text: "Lineage (each step: the diff from its first parent)" }));
    box.appendChild(el("ul", { class: "tree", id: "lineage" }, lineageNode(r, id, {}, 0)));
    box.scrollIntoView({ block: "start" });
  }

  /* ---------- fine-tuning ---------- */
  function renderFinetune(r) {
    var s = section("finetune", "Fine-tuning rounds");
    var ft = r.finetune;
    if (!ft.rounds.length) { s.appendChild(el("p", { class: "note", text: "This run had no fine-tuning rounds." })); return; }
    s.appendChild(table(["round", "after batch", "status", "accepted", "train / val", "val loss before → after", "seconds", "adapter"],
      ft.rounds.map(function (x) {
        var m = x.metrics || {}, ex = x.examples || {};
        return [String(x.round), String(x.batch), x.status + (x.error ? ": " + x.error : ""), fmt(x.accepted),
                fmt(ex.train) + " / " + fmt(ex.val), fmt(m.val_loss_before) + " → " + fmt(m.val_loss_after),
                fmt(m.seconds !== undefined ? m.seconds : x.seconds), x.applied && x.applied.length ? "loaded" : (x.adapter ? "not applied" : "none")];
      })));
    s.appendChild(el("h3", { text: "Per period (ELM Fig. 11)" }));
    s.appendChild(table(["period", "batches", "candidates", "LLM calls", "parsed", "valid", "inserted", "elites", "QD score"],
      ft.periods.map(function (p) {
        var n = p.candidates;
        return [p.period, p.batches ? p.batches[0] + "–" + p.batches[1] : "–", fmt(n), fmt(p.llm_calls), pct(p.parsed, n), pct(p.valid, n), pct(p.inserted, n), fmt(p.elites), fmt(p.qd_score)];
      })));
  }

  /* ---------- several runs ---------- */
  var cmp = { metric: "qd_score", axis: "evaluations" };
  function renderCompare() {
    var C = D.compare, s = section("compare", "Runs side by side");
    s.appendChild(el("p", { class: "note", text: D.runs.length + " runs in " + C.groups.length +
      " groups (runs equal but for the seed form a group). Lines: mean over the group's seeds; bands: 95 % Student-t interval." +
      (C.reference_bins !== null ? " QD score, coverage and fitness are measured on one reference grid (" + JSON.stringify(C.reference_bins) +
       " bins per descriptor) into which every valid program of each run is inserted, as `evolm compare` does, so runs with different archives compare." : "") }));
    s.appendChild(el("div", { class: "controls" },
      el("label", null, "metric ", select(Object.keys(METRICS).map(function (k) { return [k, METRICS[k]]; }), cmp.metric, function (v) { cmp.metric = v; drawCompare(); })),
      el("label", null, "x axis ", select(Object.keys(AXES).map(function (k) { return [k, AXES[k]]; }), cmp.axis, function (v) { cmp.axis = v; drawCompare(); }))));
    s.appendChild(plotDiv("compare-plot", true));
    var keys = ["qd_score", "coverage", "max_fitness", "mean_fitness", "evaluations", "llm_calls", "tokens", "elapsed"];
    s.appendChild(el("h3", { text: "Final values (mean ± 95 % half-width)" }));
    s.appendChild(table(["group", "runs", "seeds"].concat(keys.map(function (k) { return METRICS[k] || AXES[k]; })),
      C.groups.map(function (g) { return [g.label, String(g.members.length), g.seeds.join(", ")].concat(keys.map(function (k) { return pm(g.final[k]); })); })));
    s.appendChild(el("h3", { text: "Runs (click one to show it below)" }));
    var groupOf = {};
    C.groups.forEach(function (g) { g.members.forEach(function (m) { groupOf[m] = g.label; }); });
    s.appendChild(table(["run", "group", "seed", "state", "QD score", "coverage", "best fitness", "evaluations"],
      C.runs.map(function (x) { return [x.name, groupOf[x.index], String(x.seed), x.state, fmt(x.qd_score), fmt(x.coverage), fmt(x.max_fitness), fmt(x.evaluations)]; }),
      { cls: "clickable", onclick: function (i) { state.run = C.runs[i].index; renderRun(); document.getElementById("summary").scrollIntoView(); } }));
    drawCompare();
  }
  function drawCompare() {
    var traces = [];
    D.compare.groups.forEach(function (g, i) {
      var c = g.curves[cmp.axis], color = COLORS[i % 10];
      if (!c) return;
      var m = c.metrics[cmp.metric], lo = [], hi = [];
      m.mean.forEach(function (v, j) { var h = m.half[j]; lo.push(v === null || h === null ? v : v - h); hi.push(v === null || h === null ? v : v + h); });
      traces.push({ type: "scatter", mode: "lines", x: c.x, y: lo, line: { width: 0, shape: "hv" }, hoverinfo: "skip", showlegend: false, legendgroup: g.label });
      traces.push({ type: "scatter", mode: "lines", x: c.x, y: hi, fill: "tonexty", fillcolor: color + "33", line: { width: 0, shape: "hv" },
                    hoverinfo: "skip", showlegend: false, legendgroup: g.label });
      traces.push({ type: "scatter", mode: "lines", x: c.x, y: m.mean, name: g.label + " (n=" + g.members.length + ")", line: { color: color, shape: "hv" }, legendgroup: g.label });
    });
    Plotly.react("compare-plot", traces, layout(METRICS[cmp.metric] + " across seeds", AXES[cmp.axis], METRICS[cmp.metric]), PCONF_BAR);
  }

  /* ---------- page ---------- */
  function renderRun() {
    app.innerHTML = "";
    buildNav();
    if (D.compare) { renderCompare(); }
    var r = run();
    renderSummary(r);
    renderArchive(r);
    renderCurves(r);
    renderOperators(r);
    renderFailures(r);
    renderBest(r);
    renderEliteSection(r);
    renderFinetune(r);
    app.appendChild(el("p", { class: "note", text: "evolm " + D.version + " · generated " + D.generated_at }));
  }
  window.evolmReport = { data: D, showElite: showElite, state: state };
  renderRun();
  document.body.setAttribute("data-ready", "1");
})();
