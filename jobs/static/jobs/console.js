/* Live parts of the console's pages: an element with data-live-url is replaced, every
   data-live-every milliseconds, by the fragment that URL answers. A fragment without
   data-live-url (the run has finished) ends the polling. No page reload, no library. */
(function () {
  "use strict";
  var MAX_BACKOFF_MS = 10000;

  function schedule(region, delay) {
    window.setTimeout(function () { refresh(region, delay); }, delay);
  }

  function refresh(region, delay) {
    var url = region.getAttribute("data-live-url");
    var every = parseInt(region.getAttribute("data-live-every"), 10) || 1000;
    if (!url || !region.isConnected) {
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("template");
        holder.innerHTML = html.trim();
        var fresh = holder.content.firstElementChild;
        if (!fresh) {
          throw new Error("empty fragment");
        }
        region.replaceWith(fresh);
        if (fresh.hasAttribute("data-live-url")) {
          schedule(fresh, every);
        }
      })
      .catch(function () {
        // The gateway restarting or the network gone: say so, and try again more slowly.
        region.classList.add("live-stale");
        schedule(region, Math.min(delay * 2, MAX_BACKOFF_MS));
      });
  }

  function start() {
    document.querySelectorAll("[data-live-url]").forEach(function (region) {
      var every = parseInt(region.getAttribute("data-live-every"), 10) || 1000;
      schedule(region, every);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
