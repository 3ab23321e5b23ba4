// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- browser code: the type-check has no DOM library.
// @ts-nocheck
/* global document, window, EventSource, DOMParser, location */
// skiplock dashboard: live refresh and "select all". Every page works without this file; with it, a page marked
// data-live="on" follows the server's events (api/events) and fetches its own content again when something changed,
// swapping it in place. The stream is closed while the tab is hidden and reopened when it is shown again.
(() => {
  "use strict";
  const body = document.body;
  const base = body.dataset.base || "";
  const status = document.getElementById("live-status");
  const MIN_GAP_MS = 1000;

  function bindSelectAll(root) {
    for (const all of root.querySelectorAll("input[data-select-all]")) {
      all.hidden = false;
      all.addEventListener("change", () => {
        const form = all.closest("form");
        for (const box of form.querySelectorAll('input[type="checkbox"][name="id"]')) box.checked = all.checked;
      });
    }
  }
  bindSelectAll(document);

  if (body.dataset.live !== "on" || typeof EventSource !== "function") return;

  let source = null;
  let timer = null;
  let inFlight = false;
  let again = false;
  let lastAt = 0;

  function show(text, paused) {
    if (!status) return;
    status.hidden = false;
    status.textContent = text;
    status.classList.toggle("paused", Boolean(paused));
  }

  /** What the user has set on the page that a fresh copy would lose: ticked boxes, open details, the focused field. */
  function keepState(main) {
    const checked = new Set(
      [...main.querySelectorAll('input[type="checkbox"][name="id"]:checked')].map((b) => b.value),
    );
    const open = [...main.querySelectorAll("details")].map((d) => d.open);
    return { checked, open };
  }

  function restoreState(main, state) {
    for (const box of main.querySelectorAll('input[type="checkbox"][name="id"]'))
      box.checked = state.checked.has(box.value);
    main.querySelectorAll("details").forEach((d, i) => {
      if (state.open[i]) d.open = true;
    });
  }

  async function refresh() {
    const active = document.activeElement;
    // Someone typing in a field keeps the page as it is; the next event refreshes it.
    if (active && active.matches && active.matches("main input:not([type=checkbox]), main textarea, main select"))
      return;
    inFlight = true;
    lastAt = Date.now();
    try {
      const res = await fetch(location.href, { headers: { accept: "text/html" }, credentials: "same-origin" });
      if (!res.ok || res.redirected) {
        if (res.status === 401 || res.redirected) stop("signed out");
        return;
      }
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.getElementById("content");
      const current = document.getElementById("content");
      if (!fresh || !current) return;
      const state = keepState(current);
      const adopted = document.adoptNode(fresh);
      restoreState(adopted, state);
      current.replaceWith(adopted);
      bindSelectAll(adopted);
      const nav = doc.querySelector("header nav");
      const oldNav = document.querySelector("header nav");
      if (nav && oldNav) oldNav.replaceWith(document.adoptNode(nav));
      document.title = doc.title;
      body.dataset.refreshed = String(Number(body.dataset.refreshed || "0") + 1);
    } catch {
      // The server is away for a moment: the stream reconnects and the next event tries again.
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  }

  function schedule() {
    if (inFlight) {
      again = true;
      return;
    }
    if (timer !== null) return;
    const wait = Math.max(0, lastAt + MIN_GAP_MS - Date.now());
    timer = setTimeout(() => {
      timer = null;
      void refresh();
    }, wait);
  }

  function start() {
    if (source !== null) return;
    source = new EventSource(`${base}/api/events`);
    source.addEventListener("hello", (e) => {
      show(JSON.parse(e.data).doorbell ? "live" : "live (polling)");
    });
    source.addEventListener("doorbell", (e) => {
      show(JSON.parse(e.data).doorbell ? "live" : "live (polling)");
    });
    source.addEventListener("change", (e) => {
      // A task's page changes only with news of that task; a list or the overview with any.
      const task = body.dataset.task;
      const news = JSON.parse(e.data);
      // "…" stands for ids past the most one event names.
      const names = (id) => news.finished.includes(id) || news.progress.includes(id);
      if (task && !names(task) && !names("…")) return;
      schedule();
    });
    source.addEventListener("refresh", schedule);
    source.addEventListener("error", () => show("reconnecting…", true));
  }

  function stop(why) {
    if (source !== null) source.close();
    source = null;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    show(why, true);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") stop("paused");
    else {
      start();
      schedule();
    }
  });
  window.addEventListener("pagehide", () => stop("paused"));
  if (document.visibilityState !== "hidden") start();
  else show("paused", true);
})();
