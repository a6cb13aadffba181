// The campaigns list: live. Any event redraws the table from /api/campaigns (at most once a second).
"use strict";
(function () {
  const mp = window.mp;
  const body = document.querySelector("[data-campaigns]");
  const status = document.querySelector("[data-live-status]");

  function row(c) {
    const progress = mp.el("progress", { max: 1, value: c.progress, "aria-label": "progress of " + c.name }, mp.percent(c.progress));
    return mp.el("tr", { "data-campaign": c.id },
      mp.el("td", {},
        mp.el("a", { href: "/campaigns/" + c.id }, c.name), " ", mp.el("span", { class: "muted" }, "#" + c.id),
        c.waiting ? mp.el("div", { class: "muted small" }, c.waiting) : null),
      mp.el("td", {}, mp.badge(c.state)),
      mp.el("td", {}, mp.el("div", { class: "progress" }, progress, mp.el("span", { class: "num" }, mp.percent(c.progress)))),
      mp.el("td", { class: "num" }, c.counts.sent + " / " + c.total),
      mp.el("td", { class: "num" }, String(c.counts.failed)),
      mp.el("td", { class: "num" }, mp.rate(c.throughput)),
      mp.el("td", { class: "num" }, mp.duration(c.eta_seconds)),
      mp.el("td", {}, c.route));
  }

  async function refresh() {
    const answer = await mp.api("/api/campaigns");
    if (!answer.ok) return;
    if (!body) { if (answer.body.length) location.reload(); return; }
    body.replaceChildren(...answer.body.map(row));
  }

  const later = mp.throttle(refresh, 1000);
  mp.follow("/api/events", { started: later, progress: later, state: later, finished: later, limits: later }, status);
})();
