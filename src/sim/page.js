// Draws the model (built by src/sim/page.rs) of one run: tree, lanes, arrows, why-chain.
"use strict";
window.pageErrors = [];
window.addEventListener("error", (e) => {
  window.pageErrors.push(String(e.message));
  document.body.dataset.errors = window.pageErrors.join(" | ");
});

const model = JSON.parse(document.getElementById("model").textContent);
const SVG = "http://www.w3.org/2000/svg";
const COL = 16, ROW = 26, LEFT = 8, TOP = 34;

function el(tag, attrs, parent, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

const x = (i) => LEFT + i * COL + COL / 2;
const y = (lane) => TOP + lane * ROW + ROW / 2;

function header() {
  const h = el("header", {}, document.body);
  el("h1", {}, h, model.title);
  const v = model.violation;
  el("div", { class: v ? "verdict" : "verdict ok" }, h,
    v ? `${v.invariant} violated at ${v.subject}: ${v.message}`
      : "every invariant holds");
}

function tree(parent) {
  el("h2", {}, parent, "Supervision tree");
  const root = el("ul", { class: "tree" }, parent);
  const lists = { "": root };
  for (const lane of model.lanes) {
    const parts = lane.name.startsWith("<") ? [lane.name] : lane.name.split("/");
    const up = parts.slice(0, -1).join("/");
    const list = lists[up] || root;
    const li = el("li", { title: lane.name }, list);
    el("span", { class: lane.supervisor ? "sup" : "" }, li, parts[parts.length - 1]);
    lists[lane.name] = el("ul", { class: "tree" }, li);
  }
}

function lanes(parent) {
  const n = model.events.length;
  const width = LEFT + n * COL + 20;
  const height = TOP + model.lanes.length * ROW + 10;
  const svg = el("svg:svg", { width, height, id: "chart" }, parent);
  const defs = el("svg:defs", {}, svg);
  const head = el("svg:marker", { id: "head", viewBox: "0 0 8 8", refX: 7, refY: 4,
    markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, defs);
  el("svg:path", { d: "M0,0 L8,4 L0,8 z", fill: "context-stroke" }, head);
  model.lanes.forEach((lane, k) => {
    const g = el("svg:g", { class: "lane", "data-name": lane.name }, svg);
    el("svg:rect", { class: k % 2 ? "lane-bg odd" : "lane-bg", x: 0, y: TOP + k * ROW,
      width, height: ROW }, g);
  });
  // Simulated time, labelled where it moves.
  let last = -1e9, lastT = -1;
  model.events.forEach((e, i) => {
    if (e.t !== lastT && x(i) - last > 70) {
      el("svg:text", { x: x(i), y: 14 }, svg, (e.t / 1000).toFixed(3) + "ms");
      el("svg:line", { x1: x(i), x2: x(i), y1: 18, y2: height, stroke: "#eee" }, svg);
      last = x(i);
    }
    lastT = e.t;
  });
  for (const w of model.windows) {
    const r = el("svg:rect", { class: "window", x: x(w.from) - COL / 2, y: TOP + w.lane * ROW + 2,
      width: x(w.to) - x(w.from) + COL, height: ROW - 4 }, svg);
    el("svg:title", {}, r,
      `restart intensity ${w.intensity} in ${w.period}s: ${w.restarts.length} restarts in the window, then it gave up`);
  }
  for (const b of model.bars) {
    const end = b.to === null ? n - 1 : b.to;
    const lane = model.lanes[b.lane];
    const r = el("svg:rect", { class: lane.supervisor ? "bar sup" : "bar", x: x(b.from),
      y: y(b.lane) - 5, width: Math.max(2, x(end) - x(b.from)), height: 10, rx: 3 }, svg);
    el("svg:title", {}, r, `${lane.name} ${b.pid}` + (b.reason ? ` exited: ${b.reason}` : " alive at the end"));
  }
  model.events.forEach((e, i) => {
    if (e.lane === null || e.from_lane === null || e.from_lane === undefined) return;
    let x1 = x(i), x2 = x(i);
    if (e.kind === "delay") {
      const delivered = model.events.findIndex((d, j) => j > i && d.causes.includes(i));
      if (delivered < 0) return;
      x2 = x(delivered);
    }
    if (e.from_lane === e.lane && x1 === x2) return;
    el("svg:path", { class: "arrow " + e.kind,
      d: `M${x1},${y(e.from_lane)} C${x1 + 6},${(y(e.from_lane) + y(e.lane)) / 2} ${x2 - 6},${(y(e.from_lane) + y(e.lane)) / 2} ${x2},${y(e.lane)}` }, svg);
  });
  const why = new Set(model.why);
  model.events.forEach((e, i) => {
    if (e.lane === null || e.kind === "other") return;
    const cls = ["ev", e.kind, why.has(i) ? "why" : "", e.violation ? "violation" : ""].join(" ");
    const g = el("svg:g", { class: cls, id: "ev" + i, "data-index": i }, svg);
    el("svg:circle", { cx: x(i), cy: y(e.lane), r: e.kind === "fault" || e.kind === "delay" ? 6 : 4 }, g);
    el("svg:title", {}, g, e.text);
    g.addEventListener("click", () => choose(i));
  });
  if (model.violation && !model.events.some((e) => e.violation)) {
    el("svg:line", { class: "end-violation", x1: x(n - 1), x2: x(n - 1), y1: 18, y2: height }, svg);
  }
  // Lane names last, on top of the drawing's left edge.
  model.lanes.forEach((lane, k) => {
    el("svg:text", { x: LEFT + 2 + lane.depth * 8, y: TOP + k * ROW + 10, fill: "#666" }, svg, lane.name);
  });
}

function side(parent) {
  el("h2", {}, parent, model.violation ? "Why: from the faults to the violation" : "What the faults led to");
  const list = el("ol", { id: "why", class: "mono" }, parent);
  for (const i of model.why) {
    el("li", { "data-index": i }, list, model.events[i].text).addEventListener("click", () => choose(i));
  }
  if (model.violation) {
    const v = model.violation;
    el("li", { class: "verdict" }, list, `${v.invariant} violated at ${v.subject}: ${v.message}`);
  }
  el("h2", {}, parent, "Event");
  el("div", { id: "details", class: "mono" }, parent, "Click an event.");
  el("h2", {}, parent, "Its causes");
  el("ol", { id: "causes", class: "mono" }, parent);
}

function chain(i) {
  const seen = new Set(), stack = [i];
  while (stack.length) {
    const j = stack.pop();
    if (seen.has(j)) continue;
    seen.add(j);
    stack.push(...model.events[j].causes);
  }
  return [...seen].sort((a, b) => a - b);
}

function choose(i) {
  document.querySelectorAll(".ev.chosen").forEach((g) => g.classList.remove("chosen"));
  const steps = chain(i);
  for (const j of steps) {
    const g = document.getElementById("ev" + j);
    if (g) g.classList.add("chosen");
  }
  const e = model.events[i];
  document.getElementById("details").textContent =
    `#${i} at ${(e.t / 1000).toFixed(3)}ms (${e.kind})\n${e.text}`;
  const causes = document.getElementById("causes");
  causes.replaceChildren();
  for (const j of steps) {
    el("li", {}, causes, model.events[j].text).addEventListener("click", () => choose(j));
  }
}

header();
const main = el("main", {}, document.body);
tree(el("section", { id: "tree" }, main));
lanes(el("section", { id: "lanes" }, main));
side(el("section", { id: "side" }, main));
document.body.dataset.lanes = String(document.querySelectorAll("g.lane").length);
document.body.dataset.rendered = "ok";
