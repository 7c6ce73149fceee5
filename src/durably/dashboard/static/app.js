// durably's dashboard: live pages (server-sent events, polling when they fail) and a
// JSON editor that validates before it sends. No framework, no build.
"use strict";

function refresh() {
  const main = document.getElementById("main");
  return fetch(window.location.href, { credentials: "same-origin" })
    .then((response) => (response.ok ? response.text() : null))
    .then((html) => {
      if (html === null) return;
      const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
      if (!fresh) return;
      const active = document.activeElement;
      if (active && main.contains(active) && active.matches("input, textarea, select")) {
        return; // someone is typing: the next change brings the page up to date
      }
      const x = window.scrollX, y = window.scrollY;
      main.innerHTML = fresh.innerHTML;
      window.scrollTo(x, y);
      wire(main);
    })
    .catch(() => {});
}

function live() {
  const main = document.getElementById("main");
  const watch = main && main.dataset.live;
  if (!watch) return;
  let failures = 0;
  let poller = null;
  const poll = () => { if (!poller) poller = setInterval(refresh, 5000); };
  if (!window.EventSource) return poll();
  const base = document.querySelector('meta[name="base"]').content; // a Mount's prefix
  const source = new EventSource(base + "/live?" + watch);
  source.onopen = refresh; // what changed between the page's rendering and now
  source.addEventListener("changed", () => { failures = 0; refresh(); });
  source.onerror = () => {
    failures += 1;
    if (failures >= 3) { source.close(); poll(); }
  };
}

function wire(root) {
  root.querySelectorAll("textarea.json-editor").forEach((editor) => {
    const form = editor.form;
    const message = form.querySelector(".json-error");
    const button = form.querySelector("button[type=submit]");
    const check = () => {
      try {
        JSON.parse(editor.value);
        editor.setCustomValidity("");
        message.textContent = "";
        button.disabled = false;
      } catch (error) {
        editor.setCustomValidity("not JSON");
        message.textContent = "Not valid JSON: " + error.message;
        button.disabled = true;
      }
    };
    editor.addEventListener("input", check);
    check();
  });
}

document.addEventListener("DOMContentLoaded", () => { wire(document); live(); });
