// EVCharging dashboard: applies the server's live feed (Server-Sent Events) to the page.
// The server renders every fragment; this file only puts them in place. No polling:
// the page changes when the server pushes, and EventSource reconnects by itself.
//
// The board shows one page of a view (filters in the URL). Changing the filters, the
// sort or the page opens a new stream for the new view (the server closes the old one,
// same `client` id) whose first message is that view's snapshot: one code path for the
// first render, a filter and a resynchronisation.
"use strict";

(function () {
  const live = document.body.dataset.live;
  const banner = document.getElementById("banner");
  const indicator = document.getElementById("live-indicator");
  let serverMessage = banner && !banner.hidden ? banner.textContent.trim() : "";
  let eventsFlow = true; // false while the server says the broker is unreachable
  let connectionLost = false;
  let streamOpen = false;

  // A page that is this far behind the server (its main thread was busy, the tab asleep)
  // drops what is queued for it and asks for the state of now instead.
  const BEHIND_MS = 3000;
  const DEFAULTS = { sort: "id", size: "48", page: "1" };

  // One place decides what the banner and the footer's indicator say.
  function showBanner() {
    const message = connectionLost
      ? "Lost the connection to the dashboard server. Reconnecting…"
      : serverMessage;
    if (banner) {
      banner.textContent = message;
      banner.hidden = !message;
    }
    document.body.dataset.stale = message ? "true" : "false";
    if (indicator) {
      // Central's API may be slow or down while its events still arrive: still live.
      const state = connectionLost ? "lost" : !streamOpen ? "connecting" : !eventsFlow ? "paused" : "live";
      indicator.dataset.state = state;
      indicator.textContent = { lost: "reconnecting…", connecting: "connecting…", paused: "paused", live: "live" }[state];
    }
  }

  // Forms that need a second thought (stop all, revoke a key).
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  if (!live) return;

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  // ------------------------------------------------------------------ the board's view
  const filters = document.getElementById("filters");
  // On a phone the list comes first: the map folds away (one tap opens it).
  const places = document.getElementById("locations-panel");
  if (places && window.matchMedia("(max-width: 40rem)").matches) places.open = false;

  // The view's query string, canonical: empty values and defaults left out.
  function canonical(params) {
    const out = new URLSearchParams();
    params.forEach(function (value, key) {
      if (value !== "" && DEFAULTS[key] !== value) out.append(key, value);
    });
    return out.toString();
  }

  function currentView() {
    return canonical(new URLSearchParams(window.location.search));
  }

  // The form shows the URL's view (after a link, Back or Forward).
  function syncForm() {
    if (!filters) return;
    const params = new URLSearchParams(window.location.search);
    const states = params.getAll("state").join(",").split(",");
    filters.querySelectorAll('input[name="state"]').forEach((box) => { box.checked = states.includes(box.value); });
    const why = filters.querySelector('input[name="why"]');
    if (why) why.checked = params.get("why") === "weather";
    ["location", "q", "sort", "size"].forEach(function (name) {
      const field = filters.elements.namedItem(name);
      if (!field) return;
      const value = params.get(name) || (name in DEFAULTS ? DEFAULTS[name] : "");
      if (field instanceof HTMLSelectElement && value && !Array.from(field.options).some((o) => o.value === value)) {
        field.add(new Option(value, value));
      }
      field.value = value;
    });
  }

  function show(view, push) {
    const url = "/" + (view ? "?" + view : "");
    if (push && url !== window.location.pathname + window.location.search) {
      window.history.pushState(null, "", url);
    }
    syncForm();
    connect(mark); // a new view: the panels shown are still good, only the list changes
  }

  if (filters) {
    let typing = null;
    const apply = function () {
      const params = new URLSearchParams(new FormData(filters));
      params.delete("page"); // new filters start at the first page
      show(canonical(params), true);
    };
    filters.addEventListener("submit", function (event) {
      event.preventDefault();
      apply();
    });
    filters.addEventListener("change", function (event) {
      if (event.target.name !== "q") apply();
    });
    filters.addEventListener("input", function (event) {
      if (event.target.name !== "q") return;
      window.clearTimeout(typing);
      typing = window.setTimeout(apply, 250);
    });
  }

  // Links to another view of the board (summary, map, pager) change the view in place.
  document.addEventListener("click", function (event) {
    const link = event.target instanceof Element ? event.target.closest("a[data-view]") : null;
    if (!link || live !== "board" || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    const target = new URL(link.getAttribute("href") || link.getAttribute("xlink:href"), window.location.href);
    if (target.origin !== window.location.origin || target.pathname !== "/") return;
    event.preventDefault();
    show(canonical(target.searchParams), true);
    const heading = document.getElementById("list-count");
    if (heading && link.closest(".pager")) heading.scrollIntoView({ block: "nearest" });
  });
  window.addEventListener("popstate", function () { if (live === "board") show(currentView(), false); });

  // ------------------------------------------------------------------ applying the feed
  function placeRow(row) {
    if (row.html) {
      const old = document.getElementById("cp-" + row.id);
      if (old) old.replaceWith(fragment(row.html));
    }
    // Operator page: the state column.
    const chip = document.querySelector('[data-cp-state="' + CSS.escape(row.id) + '"]');
    if (chip && row.state) {
      chip.className = "chip state-" + row.state.toLowerCase();
      chip.textContent = row.label;
    }
  }

  function placeList(list) {
    const here = document.getElementById("list");
    if (!here) return;
    // Keep the keyboard where it was when the rows under it are replaced.
    const focused = document.activeElement && here.contains(document.activeElement) ? document.activeElement.id : null;
    here.innerHTML = list.html;
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  }

  function placePanel(name, html) {
    document.querySelectorAll('[data-panel="' + name + '"]').forEach(function (el) {
      el.innerHTML = html;
    });
  }

  function placeAll(data) {
    if (data.list) placeList(data.list);
    (data.rows || []).forEach(placeRow);
    Object.keys(data.panels || {}).forEach((name) => placePanel(name, data.panels[name]));
  }

  let refreshing = null;
  function refreshRevenue() {
    // A ticket changes totals, charts and history: fetch this page again and swap them in.
    if (refreshing) return;
    refreshing = fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : Promise.reject(response.status)))
      .then(function (text) {
        const fresh = new DOMParser().parseFromString(text, "text/html").getElementById("revenue-live");
        const current = document.getElementById("revenue-live");
        if (fresh && current) current.replaceWith(fresh);
      })
      .catch(function () { /* the next ticket or a reload will bring it */ })
      .finally(function () { refreshing = null; });
  }

  // This page's id for the server: a new stream of the same page replaces the old one.
  const client = Array.from(window.crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
  let source = null;
  let offset = 0; // this browser's clock minus the server's, at the last snapshot
  let mark = ""; // the server's mark on the last message applied: the panels are as of it
  let retry = null;

  function resync() {
    document.body.dataset.resyncs = String(Number(document.body.dataset.resyncs || 0) + 1);
    connect(); // everything again, panels too
  }

  function connect(since) {
    if (source) source.close();
    window.clearTimeout(retry);
    const view = live === "board" ? currentView() : "";
    const have = since ? "&since=" + encodeURIComponent(since) : "";
    const stream = (source = new EventSource("/events?for=" + live + "&client=" + client + have + (view ? "&" + view : "")));
    const mine = (fn) => function (event) { if (source === stream) fn(event); };
    stream.addEventListener("open", mine(function () {
      connectionLost = false;
      streamOpen = true;
      showBanner();
    }));
    stream.addEventListener("error", mine(function () {
      connectionLost = true;
      showBanner();
      if (stream.readyState === EventSource.CLOSED) {
        // The server refused the stream (busy, or restarting): try again shortly.
        retry = window.setTimeout(() => connect(), 3000);
      }
    }));
    stream.addEventListener("snapshot", mine(function (event) {
      const data = JSON.parse(event.data);
      offset = Date.now() - data.t;
      placeAll(data);
      if (data.mark) mark = data.mark;
      serverMessage = data.status.message;
      eventsFlow = data.status.broker !== false;
      showBanner();
      document.body.dataset.shown = view; // what the page shows now (tests wait on it)
    }));
    stream.addEventListener("update", mine(function (event) {
      const data = JSON.parse(event.data);
      if (Date.now() - data.t - offset > BEHIND_MS) {
        resync(); // far behind: what is queued is stale, take the state of now instead
        return;
      }
      placeAll(data);
      if (data.mark) mark = data.mark;
    }));
    stream.addEventListener("status", mine(function (event) {
      const status = JSON.parse(event.data);
      serverMessage = status.message;
      eventsFlow = status.broker !== false;
      showBanner();
    }));
    stream.addEventListener("ticket", mine(function () {
      if (live === "revenue") refreshRevenue();
    }));
  }

  connect();
  window.addEventListener("pagehide", function () { if (source) source.close(); });
})();
