// EVCharging dashboard: applies the server's live feed (Server-Sent Events) to the page.
// The server renders every fragment; this file only puts them in place. No polling:
// the page changes when the server pushes, and EventSource reconnects by itself.
"use strict";

(function () {
  const live = document.body.dataset.live;
  const banner = document.getElementById("banner");
  const indicator = document.getElementById("live-indicator");
  let serverMessage = banner && !banner.hidden ? banner.textContent.trim() : "";
  let connectionLost = false;

  let streamOpen = false;

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
      const state = connectionLost ? "lost" : !streamOpen ? "connecting" : message ? "paused" : "live";
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

  function placeTile(tile) {
    // Board: replace, insert in id order, or remove the tile.
    const grid = document.getElementById("tiles");
    if (grid) {
      const old = document.getElementById("cp-" + tile.id);
      if (!tile.html) {
        if (old) old.remove();
      } else if (old) {
        old.replaceWith(fragment(tile.html));
      } else {
        const placeholder = document.getElementById("no-tiles");
        if (placeholder) placeholder.remove();
        const next = Array.from(grid.querySelectorAll("[data-cp]")).find((el) => el.dataset.cp > tile.id);
        grid.insertBefore(fragment(tile.html), next || null);
      }
    }
    // Operator page: the state column.
    const chip = document.querySelector('[data-cp-state="' + CSS.escape(tile.id) + '"]');
    if (chip && tile.state) {
      chip.className = "chip state-" + tile.state.toLowerCase();
      chip.textContent = tile.label;
    }
  }

  function placePanel(name, html) {
    document.querySelectorAll('[data-panel="' + name + '"]').forEach(function (el) {
      el.innerHTML = html;
    });
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

  let source = null;
  function connect() {
    source = new EventSource("/events");
    source.addEventListener("open", function () {
      connectionLost = false;
      streamOpen = true;
      showBanner();
    });
    source.addEventListener("error", function () {
      connectionLost = true;
      showBanner();
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (busy, or restarting): try again shortly.
        window.setTimeout(connect, 3000);
      }
    });
    source.addEventListener("snapshot", function (event) {
      const data = JSON.parse(event.data);
      const grid = document.getElementById("tiles");
      if (grid) {
        grid.replaceChildren();
        if (!data.tiles.length) {
          grid.innerHTML = '<p class="empty" id="no-tiles">No charge point is registered yet.</p>';
        }
      }
      data.tiles.forEach(placeTile);
      Object.keys(data.panels).forEach((name) => placePanel(name, data.panels[name]));
      serverMessage = data.status.message;
      showBanner();
    });
    source.addEventListener("tile", (event) => placeTile(JSON.parse(event.data)));
    source.addEventListener("panel", function (event) {
      const data = JSON.parse(event.data);
      placePanel(data.name, data.html);
    });
    source.addEventListener("status", function (event) {
      serverMessage = JSON.parse(event.data).message;
      showBanner();
    });
    source.addEventListener("ticket", function () {
      if (live === "revenue") refreshRevenue();
    });
  }

  connect();
  window.addEventListener("pagehide", function () { if (source) source.close(); });
})();
