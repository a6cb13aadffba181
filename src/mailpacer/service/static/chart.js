// The campaign page's chart: messages/s (area) and open connections (steps) over time, with a
// numbered line where a limit was learned. Plain SVG, drawn from the page's JSON.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const H = 240, PAD = { left: 44, right: 36, top: 22, bottom: 28 };

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function elapsed(seconds) {
    if (seconds < 60) return Math.round(seconds) + " s";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return s ? m + " min " + s + " s" : m + " min";
  }

  /** Draw `history` ({samples: [[at, rate, connections, sent]], marks: [{at, kind, text}]}). */
  function draw(container, history) {
    const samples = history.samples || [];
    const marks = history.marks || [];
    const empty = container.querySelector("[data-chart-empty]");
    for (const old of container.querySelectorAll("svg")) old.remove();
    if (samples.length < 2) { if (empty) empty.hidden = false; return; }
    if (empty) empty.hidden = true;
    const W = Math.max(320, Math.round(container.clientWidth || 640));
    const t0 = samples[0][0];
    const t1 = Math.max(samples[samples.length - 1][0], t0 + 1);
    const rateMax = niceMax(Math.max(...samples.map((s) => s[1])) * 1.1);
    const connMax = Math.max(2, ...samples.map((s) => s[2])) + 1;
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
    const yr = (r) => H - PAD.bottom - (r / rateMax) * (H - PAD.top - PAD.bottom);
    const yc = (c) => H - PAD.bottom - (c / connMax) * (H - PAD.top - PAD.bottom);
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: "chart-svg", "aria-hidden": "true" });

    // grid and axes
    const part = rateMax / 5, nice = part / Math.pow(10, Math.floor(Math.log10(part)));
    const divisions = [1, 2, 5].some((n) => Math.abs(nice - n) < 1e-9) ? 5 : 4;
    for (let i = 0; i <= divisions; i++) {
      const value = (rateMax / divisions) * i, y = yr(value);
      root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "grid" }));
      root.append(svg("text", { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, +value.toFixed(1)));
    }
    for (let c = 0; c <= connMax; c += connMax > 8 ? 2 : 1) {
      root.append(svg("text", { x: W - PAD.right + 6, y: yc(c) + 4, class: "tick conn" }, c));
    }
    const span = t1 - t0;
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
    const step = steps.find((s) => span / s <= 6) || 14400;
    for (let t = 0; t <= span; t += step) {
      root.append(svg("text", { x: x(t0 + t), y: H - 8, class: "tick", "text-anchor": "middle" }, elapsed(t)));
    }
    root.append(svg("text", { x: PAD.left, y: 12, class: "axis-label" }, "messages / s"));
    root.append(svg("text", { x: W - PAD.right + 30, y: 12, class: "axis-label conn", "text-anchor": "end" }, "connections"));

    // the rate as an area, the connections as steps
    let line = "";
    samples.forEach((s, i) => { line += (i ? "L" : "M") + x(s[0]).toFixed(1) + " " + yr(s[1]).toFixed(1); });
    const base = yr(0).toFixed(1);
    const area = line + "L" + x(samples[samples.length - 1][0]).toFixed(1) + " " + base + "L" + x(samples[0][0]).toFixed(1) + " " + base + "Z";
    root.append(svg("path", { d: area, class: "rate-area" }));
    root.append(svg("path", { d: line, class: "rate-line" }));
    let steps2 = "";
    samples.forEach((s, i) => {
      const px = x(s[0]).toFixed(1), py = yc(s[2]).toFixed(1);
      steps2 += i ? "H" + px + "V" + py : "M" + px + " " + py;
    });
    root.append(svg("path", { d: steps2, class: "conn-line" }));

    // the moments limits were learned (numbered as in the list below) and state changes
    let number = 0;
    for (const mark of marks) {
      if (mark.at < t0 - 1 || mark.at > t1 + 1) continue;
      const mx = Math.min(Math.max(x(mark.at), PAD.left), W - PAD.right);
      const group = svg("g", { class: "mark " + mark.kind });
      group.append(svg("title", {}, mark.text));
      group.append(svg("line", { x1: mx, x2: mx, y1: PAD.top, y2: H - PAD.bottom, class: "mark-line" }));
      if (mark.kind === "limit") {
        number += 1;
        group.append(svg("circle", { cx: mx, cy: PAD.top, r: 9, class: "mark-dot" }));
        group.append(svg("text", { x: mx, y: PAD.top + 4, class: "mark-num", "text-anchor": "middle" }, number));
      }
      root.append(group);
    }
    container.append(root);
  }

  /** The list under the chart: each mark in words, limits numbered as on the chart. */
  function list(ol, history) {
    const mp = window.mp;
    const samples = history.samples || [];
    const t0 = samples.length ? samples[0][0] : null;
    let number = 0;
    const items = (history.marks || []).map((mark) => {
      const when = t0 === null ? mp.clock(mark.at) : "after " + elapsed(Math.max(0, mark.at - t0));
      if (mark.kind === "limit") number += 1;
      return mp.el("li", { class: "mark-item " + mark.kind },
        mark.kind === "limit" ? mp.el("span", { class: "mark-badge", "aria-hidden": "true" }, String(number)) : mp.el("span", { class: "mark-badge state", "aria-hidden": "true" }, "•"),
        mp.el("span", { class: "when" }, when), " ", mark.text);
    });
    ol.replaceChildren(...items);
  }

  window.mpChart = { draw: draw, list: list };
})();
