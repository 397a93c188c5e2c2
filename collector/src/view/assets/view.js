// agentrace live view: reads this collector's /api/v1/ every few seconds and draws the agents'
// figures, the agent graph, the slowest and failed invocations, the GPUs and, on demand, a
// trace waterfall. Text from spans is only ever set as text (never parsed as HTML).
"use strict";

const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
// Graph layout: a column's width (a node is 170 wide; the rest is room for the edges' labels).
const COLUMN = 300;
let prometheusUrl = "";
let firstRender = false;

const $ = (id) => document.getElementById(id);

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function number(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value).toLocaleString("en-US");
  if (magnitude >= 1) return value.toFixed(digits === undefined ? 2 : digits);
  return value.toPrecision(2);
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

function millis(value) {
  return value < 1000 ? `${value.toFixed(1)} ms` : `${(value / 1000).toFixed(2)} s`;
}

function bytes(value) {
  if (value === null || value === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`;
}

// A figure as a link to its query in Prometheus.
function promLink(text, query) {
  const href = `${prometheusUrl}/graph?g0.expr=${encodeURIComponent(query)}&g0.tab=0&g0.range_input=15m`;
  return el("a", { href, title: query, target: "_blank", rel: "noopener noreferrer" }, text);
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function cell(field, attributes, ...children) {
  return el("td", Object.assign({ "data-field": field, class: "num" }, attributes), ...children);
}

function quantileCell(field, figure) {
  const td = cell(field, { "data-count": figure.count });
  ["p50", "p90", "p99"].forEach((q, index) => {
    if (index) td.append(" · ");
    td.append(promLink(seconds(figure[q].value), figure[q].query));
    td.setAttribute(`data-${q}`, figure[q].value === null ? "" : figure[q].value);
  });
  return td;
}

function rateCell(field, figure) {
  return cell(field, { "data-count": figure.count }, promLink(number(figure.rate), figure.query));
}

function errorsCell(row) {
  const td = cell("errors", { "data-count": row.error_ratio.count });
  const ratio = row.error_ratio.value;
  const total = promLink(percent(ratio), row.error_ratio.query);
  if (ratio) total.classList.add("bad");
  td.append(total);
  for (const error of row.errors) {
    td.append(" ", promLink(`${error.type} ${percent(error.ratio)}`, error.query));
  }
  return td;
}

function renderAgents(summary) {
  $("window").textContent = `over the last ${Math.round(summary.window_seconds / 60 * 10) / 10} min`;
  const body = $("agents").tBodies[0];
  const rows = summary.agents.map((row) => el("tr", { "data-service": row.service, "data-agent": row.agent },
    el("td", {}, row.service),
    el("td", {}, row.agent || "(none)"),
    rateCell("invocations", row.invocations),
    rateCell("llm_requests", row.llm_requests),
    rateCell("input_tokens", row.input_tokens),
    rateCell("output_tokens", row.output_tokens),
    errorsCell(row),
    quantileCell("latency", row.latency),
    quantileCell("time_to_first_token", row.time_to_first_token),
    cell("cost_usd", { "data-count": row.cost_usd.count },
      promLink(`$${number(row.cost_usd.per_hour)}`, row.cost_usd.query))));
  body.replaceChildren(...rows);
  const store = summary.store;
  $("store").textContent = `${store.traces} of ${store.max_traces} traces, ${bytes(store.bytes)} of ${bytes(store.max_bytes)}; kept first: failed and slower than ${store.slow_seconds} s`;
}

function renderGpus(gpus) {
  const devices = gpus.devices.map((gpu) => el("tr", {},
    el("td", {}, gpu.labels.gpu), el("td", {}, gpu.labels.name),
    el("td", { class: "num" }, promLink(percent(gpu.utilization.value), gpu.utilization.query)),
    el("td", { class: "num" }, promLink(`${bytes(gpu.memory_used_bytes.value)} of ${bytes(gpu.memory_total_bytes.value)}`, gpu.memory_used_bytes.query))));
  $("gpus").tBodies[0].replaceChildren(...devices);
  const processes = gpus.processes.map((process) => el("tr", {},
    el("td", {}, process.labels.gpu), el("td", {}, process.labels.pid), el("td", {}, process.labels.container || "–"),
    el("td", {}, process.labels.service || "–"),
    el("td", { class: "num" }, promLink(percent(process.utilization.value), process.utilization.query)),
    el("td", { class: "num" }, promLink(bytes(process.memory_used_bytes.value), process.memory_used_bytes.query))));
  $("gpu-processes").tBodies[0].replaceChildren(...processes);
  const none = devices.length === 0;
  $("gpus").hidden = none;
  $("gpu-processes").hidden = processes.length === 0;
  $("no-gpu").hidden = !none;
}

// Columns by the longest path from a node no edge enters (cycles cut), rows in order met.
function layout(nodes, edges) {
  const depth = new Map(nodes.map((node) => [node.id, 0]));
  for (let pass = 0; pass < nodes.length; pass += 1) {
    let changed = false;
    for (const edge of edges) {
      const next = depth.get(edge.client) + 1;
      if (edge.client !== edge.server && next > depth.get(edge.server) && next < nodes.length) {
        depth.set(edge.server, next);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const columns = new Map();
  const place = new Map();
  for (const node of nodes) {
    const column = depth.get(node.id);
    const row = columns.get(column) || 0;
    columns.set(column, row + 1);
    place.set(node.id, { x: 20 + column * COLUMN, y: 20 + row * 56 });
  }
  const height = 40 + Math.max(1, ...columns.values()) * 56;
  const width = 60 + (Math.max(0, ...columns.keys()) + 1) * COLUMN;
  return { place, width, height };
}

function renderGraph(graph) {
  const box = $("graph");
  const { place, width, height } = layout(graph.nodes, graph.edges);
  box.setAttribute("width", width);
  box.setAttribute("height", height);
  box.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z" }));
  const defs = svg("defs");
  defs.append(marker);
  const parts = [defs];
  const nodeWidth = 170;
  for (const edge of graph.edges) {
    const from = place.get(edge.client);
    const to = place.get(edge.server);
    if (!from || !to) continue;
    const [x1, y1, x2, y2] = [from.x + nodeWidth, from.y + 16, to.x, to.y + 16];
    const path = svg("path", { d: `M${x1},${y1} C${x1 + 40},${y1} ${x2 - 40},${y2} ${x2},${y2}`, class: edge.error_ratio > 0.05 ? "edge failing" : "edge", "marker-end": "url(#arrow)" });
    const title = svg("title", {}, `${edge.client} → ${edge.server}: ${number(edge.rate)}/s, ${percent(edge.error_ratio)} failed\n${edge.query}`);
    path.append(title);
    const link = svg("a", { href: `${prometheusUrl}/graph?g0.expr=${encodeURIComponent(edge.query)}&g0.tab=0`, target: "_blank" });
    link.append(svg("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, class: "edge-label" }, `${number(edge.rate)}/s · ${percent(edge.error_ratio)}`));
    parts.push(path, link);
  }
  for (const node of graph.nodes) {
    const at = place.get(node.id);
    const group = svg("g", { class: `node ${node.kind}`, "data-node": node.id });
    group.append(svg("rect", { x: at.x, y: at.y, width: nodeWidth, height: 32 }));
    const label = node.id.length > 26 ? `${node.id.slice(0, 25)}…` : node.id;
    group.append(svg("text", { x: at.x + 8, y: at.y + 20 }, label));
    group.append(svg("title", {}, `${node.kind} ${node.id} (${node.service})`));
    parts.push(group);
  }
  box.replaceChildren(...parts);
}

function traceRows(table, list) {
  const rows = list.traces.map((trace) => {
    const name = trace.agent || (trace.root ? trace.root.name : trace.trace_id);
    const row = el("tr", { "data-trace-id": trace.trace_id, title: trace.trace_id },
      el("td", {}, name),
      el("td", {}, trace.services.join(", ")),
      el("td", { class: "num" }, millis(trace.duration_ms)),
      el("td", { class: "num" }, trace.spans),
      el("td", { class: trace.failed ? "bad" : "" }, trace.errors.join(", ") || "–"));
    row.addEventListener("click", () => { location.hash = `trace=${trace.trace_id}`; });
    return row;
  });
  $(table).tBodies[0].replaceChildren(...rows);
}

// Depth-first order of the trace's spans, each with its depth, children in start order.
function nest(spans) {
  const ids = new Set(spans.map((span) => span.span_id));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    if (span.parent_id && ids.has(span.parent_id) && span.parent_id !== span.span_id) {
      if (!children.has(span.parent_id)) children.set(span.parent_id, []);
      children.get(span.parent_id).push(span);
    } else {
      roots.push(span);
    }
  }
  const ordered = [];
  const seen = new Set();
  const visit = (span, depth) => {
    if (seen.has(span.span_id)) return;
    seen.add(span.span_id);
    ordered.push({ span, depth });
    for (const child of children.get(span.span_id) || []) visit(child, depth + 1);
  };
  roots.forEach((span) => visit(span, 0));
  spans.forEach((span) => visit(span, 0));
  return ordered;
}

function facts(span) {
  const parts = [];
  if (span.model) parts.push(span.model);
  if (span.agent && span.class !== "agent") parts.push(`agent ${span.agent}`);
  if (span.input_tokens !== null || span.output_tokens !== null) parts.push(`${span.input_tokens ?? "–"} in · ${span.output_tokens ?? "–"} out tokens`);
  if (span.cached_input_tokens) parts.push(`${span.cached_input_tokens} cached`);
  if (span.time_to_first_token_ms !== null) parts.push(`first token ${millis(span.time_to_first_token_ms)}`);
  if (span.cost_usd !== null) parts.push(`$${number(span.cost_usd, 4)}`);
  if (span.gpu) parts.push(`GPU ${number(span.gpu.gpu_seconds)} GPU·s, ${number(span.gpu.energy_joules)} J, util ${percent(span.gpu.utilization_avg)}, ${bytes(span.gpu.memory_used_max_bytes)}`);
  if (span.error) parts.push(`error ${span.error}`);
  return parts.join(" · ");
}

function renderTrace(trace) {
  $("trace-section").hidden = false;
  $("trace-id").textContent = trace.trace_id;
  const tempo = $("tempo-link");
  tempo.hidden = !trace.tempo_url;
  if (trace.tempo_url) tempo.setAttribute("href", trace.tempo_url);
  const cost = trace.cost_usd > 0 ? `, $${number(trace.cost_usd, 4)}` : "";
  const partial = trace.sampled ? "" : " Kept for a failed or slow span while traces were sampled: spans that arrived before it are not here.";
  $("trace-summary").textContent = `${trace.spans} spans over ${millis(trace.duration_ms)} in ${trace.services.join(", ")}; ${trace.input_tokens} input and ${trace.output_tokens} output tokens${cost}.${partial}`;
  const total = Math.max(trace.duration_ms, 0.001);
  const rows = nest(trace.span_list).map(({ span, depth }) => {
    const name = el("div", { class: "span-name", title: `${span.name} (${span.service})` },
      el("span", { class: `span-class ${span.class}` }, span.class), span.name);
    name.style.paddingLeft = `${depth * 14}px`;
    const bar = el("div", { class: span.error ? "span-bar failed" : "span-bar", title: millis(span.duration_ms) });
    bar.style.left = `${(span.start_ms / total) * 100}%`;
    bar.style.width = `${(span.duration_ms / total) * 100}%`;
    return el("div", { class: "span-row", "data-span-id": span.span_id, "data-parent-id": span.parent_id || "", "data-depth": depth, "data-service": span.service },
      name, el("div", { class: "span-track" }, bar), el("div", { class: "span-facts" }, [millis(span.duration_ms), facts(span)].filter(Boolean).join(" · ")));
  });
  $("waterfall").replaceChildren(...rows);
  $("trace-section").scrollIntoView();
}

async function openTraceFromHash() {
  const match = /^#trace=([0-9a-f]{32})$/.exec(location.hash);
  if (!match) { $("trace-section").hidden = true; return; }
  try {
    renderTrace(await getJson(`/api/v1/traces/${match[1]}`));
  } catch (error) {
    $("trace-section").hidden = false;
    $("trace-id").textContent = match[1];
    $("trace-summary").textContent = `not in the store: ${error.message}`;
    $("waterfall").replaceChildren();
  }
}

async function refresh() {
  try {
    const [summary, graph, slowest, failed] = await Promise.all([
      getJson("/api/v1/summary"),
      getJson("/api/v1/graph"),
      getJson("/api/v1/traces?sort=slowest&limit=10"),
      getJson("/api/v1/traces?status=error&limit=10"),
    ]);
    prometheusUrl = summary.prometheus_url;
    renderAgents(summary);
    renderGraph(graph);
    traceRows("slowest", slowest);
    traceRows("failed", failed);
    renderGpus(summary.gpus);
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    if (!firstRender && summary.agents.length > 0) {
      firstRender = true;
      performance.mark("agentrace-first-render");
      document.body.setAttribute("data-rendered", "true");
    }
  } catch (error) {
    $("status").textContent = `cannot reach the collector: ${error.message}`;
  }
  setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("close-trace").addEventListener("click", () => { history.replaceState(null, "", location.pathname); openTraceFromHash(); });
  window.addEventListener("hashchange", openTraceFromHash);
  refresh();
  openTraceFromHash();
});
