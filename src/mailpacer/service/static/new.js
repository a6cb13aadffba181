// New campaign: the list is checked whole by the API (created paused, nothing sent); problems are
// listed by row; then Start sending resumes it.
"use strict";
(function () {
  const mp = window.mp, el = mp.el;
  const form = document.querySelector("[data-new-campaign]");
  const text = document.querySelector("[data-result-text]");
  const wrap = document.querySelector("[data-problems-wrap]");
  const problems = document.querySelector("[data-problems]");
  const ready = document.querySelector("[data-ready]");
  const start = document.querySelector("[data-start]");
  const open = document.querySelector("[data-open]");
  let key = null;   // one idempotency key per list: a double click makes one campaign
  let made = null;

  function where(p) {
    const parts = [p.file || ""];
    if (p.line) parts.push("line " + p.line + (p.column ? ", column " + p.column : ""));
    return parts.filter(Boolean).join(" ");
  }

  form.addEventListener("change", (event) => { if (event.target.type === "file") key = null; });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const file = data.get("recipients");
    if (!file || !file.name) { text.textContent = "Choose a CSV file first."; return; }
    if (!data.get("sender")) { text.textContent = "Fill in From, e.g. HR <hr@example.com>."; form.sender.focus(); return; }
    data.set("skip_invalid", form.skip_invalid.checked ? "true" : "false");
    data.set("start", "false");
    key = key || (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
    ready.hidden = true;
    wrap.hidden = true;
    text.textContent = "Checking " + file.name + "…";
    const answer = await mp.api("/api/campaigns", { method: "POST", body: data, headers: { "Idempotency-Key": key } });
    if (answer.status === 422 || answer.status === 413 || answer.status === 409) {
      key = null;
      const list = (answer.body && answer.body.problems) || [];
      text.textContent = (answer.body && answer.body.error ? answer.body.error : "The list was refused.") +
        " Nothing was created or sent; fix the file and check it again.";
      problems.replaceChildren(...list.map((p) => el("tr", {},
        el("td", { class: "num" }, p.row === null || p.row === undefined ? "—" : String(p.row)),
        el("td", { class: "mono small" }, where(p)), el("td", {}, p.message))));
      wrap.hidden = list.length === 0;
      return;
    }
    if (!answer.ok) { text.textContent = (answer.body && answer.body.error) || "The server said " + answer.status; return; }
    made = answer.body;
    text.textContent = "“" + made.name + "” is ready: " + made.total + " recipients checked, nothing sent yet.";
    open.href = "/campaigns/" + made.id;
    ready.hidden = false;
    start.focus();
  });

  start.addEventListener("click", async () => {
    if (!made) return;
    start.disabled = true;
    const answer = await mp.api("/api/campaigns/" + made.id + "/resume", { method: "POST" });
    if (answer.ok) { location.assign("/campaigns/" + made.id); return; }
    start.disabled = false;
    text.textContent = (answer.body && answer.body.error) || "The server said " + answer.status;
  });
})();
