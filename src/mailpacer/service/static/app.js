// mailpacer dashboard: shared helpers. Every text from the server goes into the page as
// textContent (never innerHTML): a recipient's name is text, whatever it contains.
"use strict";
(function () {
  const mp = {};

  /** An element with attributes and children (strings become text nodes). */
  mp.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };

  /** Fetch JSON from our own API (the session cookie goes along); a 401 goes to the login. */
  mp.api = async function (path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
    if (response.status === 401) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new Error("log in first");
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
    return { status: response.status, ok: response.ok, body: body };
  };

  mp.percent = (fraction) => Math.floor(fraction * 100 + 1e-9) + " %";
  mp.rate = (value) => (value === null || value === undefined ? "—" : value.toFixed(1) + " /s");
  mp.duration = function (seconds) {
    if (seconds === null || seconds === undefined) return "—";
    let s = Math.round(seconds);
    if (s < 60) return s + " s";
    let m = Math.floor(s / 60); s = s % 60;
    if (m < 60) return m + " min " + String(s).padStart(2, "0") + " s";
    const h = Math.floor(m / 60); m = m % 60;
    return h + " h " + String(m).padStart(2, "0") + " min";
  };
  mp.clock = (at) => new Date(at * 1000).toLocaleTimeString([], { hour12: false });

  /** Set the text of every [data-field=name] inside root. */
  mp.setField = function (root, name, text) {
    for (const node of root.querySelectorAll('[data-field="' + name + '"]')) {
      node.textContent = text;
    }
  };

  /** A state badge. */
  mp.badge = (state) => mp.el("span", { class: "badge state-" + state, "data-field": "state" }, state);

  /** Follow a Server-Sent Events stream; calls handlers[kind](data). Reconnects by itself. */
  mp.follow = function (url, handlers, status) {
    const source = new EventSource(url, { withCredentials: true });
    const kinds = ["snapshot", "started", "progress", "outcome", "limits", "state", "finished"];
    for (const kind of kinds) {
      if (!handlers[kind]) continue;
      source.addEventListener(kind, (event) => handlers[kind](JSON.parse(event.data)));
    }
    if (status) {
      source.addEventListener("open", () => { status.textContent = "live"; status.dataset.state = "live"; });
      source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.dataset.state = "off"; });
    }
    return source;
  };

  /** Call fn at most once every `ms` milliseconds (the last call is not lost). */
  mp.throttle = function (fn, ms) {
    let timer = null, pending = false;
    return function () {
      if (timer) { pending = true; return; }
      fn();
      timer = setTimeout(function tick() {
        timer = null;
        if (pending) { pending = false; fn(); timer = setTimeout(tick, ms); }
      }, ms);
    };
  };

  window.mp = mp;
})();
