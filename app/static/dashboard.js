// hookline dashboard: live regions and confirmations. No framework, no build step.
// An element with data-poll="URL" is refreshed from URL (an HTML fragment the server
// rendered and escaped) every 2 s while the tab is visible; open <details> stay open.
"use strict";
(() => {
  const INTERVAL_MS = 2000;
  const indicators = document.querySelectorAll("[data-live-indicator]");

  function setState(state, label) {
    for (const el of indicators) {
      el.dataset.state = state;
      el.textContent = label;
    }
  }

  function swap(region, html) {
    const wasOpen = new Map();
    for (const d of region.querySelectorAll("details[data-key]")) wasOpen.set(d.dataset.key, d.open);
    const next = document.createElement("template");
    next.innerHTML = html;
    for (const d of next.content.querySelectorAll("details[data-key]")) {
      if (wasOpen.has(d.dataset.key)) d.open = wasOpen.get(d.dataset.key);
    }
    region.replaceChildren(next.content);
  }

  function poll(region) {
    let last = null;
    const tick = async () => {
      if (document.hidden) {
        setState("paused", "paused");
      } else {
        try {
          const response = await fetch(region.dataset.poll, {
            credentials: "same-origin",
            cache: "no-store",
            headers: { Accept: "text/html" },
          });
          if (response.status === 401) {
            setState("expired", "session expired, reload to log in");
            return; // stop polling
          }
          const html = await response.text();
          if (response.ok) {
            if (html !== last) {
              swap(region, html);
              last = html;
            }
            setState("live", "live");
          } else {
            setState("error", `refresh failed (${response.status})`);
          }
        } catch {
          setState("offline", "offline, retrying");
        }
      }
      setTimeout(tick, INTERVAL_MS);
    };
    setTimeout(tick, INTERVAL_MS);
  }

  for (const region of document.querySelectorAll("[data-poll]")) poll(region);

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
})();
