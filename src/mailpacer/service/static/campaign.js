// The campaign page: live over SSE, the chart, the buttons, failures, the preview.
"use strict";
(function () {
  const mp = window.mp, el = mp.el;
  const page = JSON.parse(document.getElementById("page-data").textContent);
  let campaign = page.campaign;
  let history = page.history;
  const id = campaign.id;
  const root = document.getElementById("main");
  const chart = document.querySelector("[data-chart]");
  const marks = document.querySelector("[data-marks]");
  const errorLine = document.querySelector('[data-field="action-error"]');

  // -- drawing -------------------------------------------------------------------------
  function showCampaign(c) {
    campaign = c;
    const finished = c.total - c.counts.queued - c.counts.sending - c.counts.deferred;
    for (const badge of root.querySelectorAll('h1 [data-field="state"]')) {
      badge.className = "badge state-" + c.state;
      badge.textContent = c.state;
    }
    for (const bar of root.querySelectorAll('[data-field="progress"]')) {
      bar.value = c.progress;
      bar.textContent = mp.percent(c.progress);
    }
    mp.setField(root, "percent", mp.percent(c.progress));
    mp.setField(root, "finished", String(finished));
    mp.setField(root, "total", String(c.total));
    mp.setField(root, "sent", String(c.counts.sent));
    mp.setField(root, "failed", String(c.counts.failed));
    mp.setField(root, "uncertain", String(c.counts.uncertain));
    mp.setField(root, "deferred", String(c.counts.deferred));
    mp.setField(root, "rate", mp.rate(c.throughput));
    mp.setField(root, "connections", String(c.connections));
    mp.setField(root, "eta", mp.duration(c.eta_seconds));
    mp.setField(root, "waiting", c.waiting || "");
    mp.setField(root, "limits_text", c.limits_text);
    mp.setField(root, "failures-count", String(c.counts.failed));
    const why = root.querySelector('[data-field="explanations"]');
    if (why && c.explanations.length) why.replaceChildren(...c.explanations.map((e) => el("li", {}, e)));
    buttons();
  }

  function buttons() {
    const s = campaign.state;
    const enabled = {
      pause: ["queued", "running", "waiting"].includes(s),
      resume: s === "paused",
      cancel: !["done", "cancelled"].includes(s),
      "retry-failed": campaign.counts.failed > 0,
      "retry-uncertain": campaign.counts.uncertain > 0,
    };
    for (const button of root.querySelectorAll("[data-action]")) {
      button.disabled = !enabled[button.dataset.action];
    }
  }

  function drawChart() {
    if (chart) window.mpChart.draw(chart, history);
    if (marks) window.mpChart.list(marks, history);
  }

  function previewButton(row, label) {
    return el("button", { type: "button", class: "link", "data-preview": row }, label || "row " + row);
  }

  function showFailures(groups) {
    const box = root.querySelector("[data-failures]");
    if (!box) return;
    if (!groups.length) { box.replaceChildren(el("p", { class: "muted" }, "No failures.")); return; }
    box.replaceChildren(...groups.map((g, i) => el("details", { class: "group", open: i === 0 },
      el("summary", {}, el("span", { class: "count" }, String(g.count)), " ",
        el("span", { class: "badge verdict" }, g.verdict), " ", el("span", {}, g.reason)),
      el("p", { class: "reply" }, el("span", { class: "label" }, "Server said"), " ", el("code", {}, g.reply)),
      el("ul", { class: "recipients" }, g.recipients.map((r) =>
        el("li", {}, previewButton(r.row), " ", r.name, " ", el("span", { class: "mono" }, r.email)))))));
  }

  function showUncertain(items) {
    const list = root.querySelector("[data-uncertain]");
    mp.setField(root, "uncertain-count", String(items.length));
    if (!list) return;
    if (!items.length) { list.replaceChildren(el("li", { class: "muted" }, "None.")); return; }
    list.replaceChildren(...items.map((m) => el("li", {}, previewButton(m.row), " ", m.name, " ",
      el("span", { class: "mono" }, m.email), " ", el("code", {}, (m.last_code || "") + " " + (m.last_text || "")))));
  }

  function showMessages(page) {
    const body = root.querySelector("[data-messages]");
    if (!body) return;
    body.replaceChildren(...page.items.map((m) => el("tr", {},
      el("td", { class: "num" }, String(m.row)),
      el("td", { class: "who" }, el("span", {}, m.name), " ", el("span", { class: "mono muted" }, m.email)),
      el("td", {}, el("span", { class: "badge state-" + m.state, title: m.last_text ? (m.last_code || "") + " " + m.last_text : null }, m.state)),
      el("td", {}, el("button", { type: "button", class: "button small", "data-preview": m.row, "aria-label": "Preview the message to " + m.email }, "Preview")))));
  }

  // -- fetching ------------------------------------------------------------------------
  async function refreshCampaign() {
    const answer = await mp.api("/api/campaigns/" + id);
    if (answer.ok) showCampaign(answer.body);
  }

  async function refreshAll() {
    const answer = await mp.api("/campaigns/" + id + ".json" + location.search);
    if (!answer.ok) return;
    history = answer.body.history;
    showCampaign(answer.body.campaign);
    showFailures(answer.body.failures);
    showUncertain(answer.body.uncertain);
    showMessages(answer.body.messages);
    drawChart();
  }

  const laterCampaign = mp.throttle(refreshCampaign, 1000);
  const laterAll = mp.throttle(refreshAll, 2000);

  function sample(data) {
    const samples = history.samples;
    const last = samples[samples.length - 1];
    if (last && data.at - last[0] < 0.25) return;
    samples.push([data.at, data.rate || 0, data.connections || 0, data.sent || 0]);
    drawChart();
  }

  mp.follow("/api/campaigns/" + id + "/events", {
    snapshot: showCampaign,
    started: (d) => { sample(d); laterAll(); },
    progress: (d) => {
      mp.setField(root, "rate", mp.rate(d.rate));
      mp.setField(root, "connections", String(d.connections || 0));
      sample(d);
      laterCampaign();
    },
    outcome: laterAll,
    limits: laterAll,
    state: laterAll,
    finished: laterAll,
  });

  // -- actions -------------------------------------------------------------------------
  const ACTIONS = {
    pause: ["pause", null],
    resume: ["resume", null],
    cancel: ["cancel", null],
    "retry-failed": ["retry", { failed: true, uncertain: false }],
    "retry-uncertain": ["retry", { failed: false, uncertain: true }],
  };

  async function act(button) {
    const name = button.dataset.action;
    if (name === "cancel" && button.dataset.armed !== "yes") {
      button.dataset.armed = "yes";
      button.textContent = "Confirm cancel";
      setTimeout(() => { button.dataset.armed = ""; button.textContent = "Cancel"; }, 5000);
      return;
    }
    const [path, body] = ACTIONS[name];
    button.setAttribute("aria-busy", "true");
    button.disabled = true;
    errorLine.hidden = true;
    try {
      const answer = await mp.api("/api/campaigns/" + id + "/" + path, {
        method: "POST",
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : null,
      });
      if (!answer.ok) {
        errorLine.textContent = (answer.body && answer.body.error) || "the server said " + answer.status;
        errorLine.hidden = false;
      } else {
        showCampaign(answer.body.campaign || answer.body);
      }
    } finally {
      button.removeAttribute("aria-busy");
      if (name === "cancel") { button.dataset.armed = ""; button.textContent = "Cancel"; }
      if (name === "resume") button.textContent = "Resume";
      buttons();
      laterAll();
    }
  }

  root.addEventListener("click", (event) => {
    const action = event.target.closest("[data-action]");
    if (action) { act(action); return; }
    const preview = event.target.closest("[data-preview]");
    if (preview) {
      const frame = root.querySelector("[data-preview-frame]");
      if (!frame) return;
      frame.src = "/campaigns/" + id + "/preview/" + preview.dataset.preview;
      const label = root.querySelector("[data-preview-label]");
      if (label) label.textContent = "row " + preview.dataset.preview;
      frame.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  });

  window.addEventListener("resize", mp.throttle(drawChart, 200));
  buttons();
  drawChart();
})();
