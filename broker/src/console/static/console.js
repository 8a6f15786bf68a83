// Runnel console: refreshes #main when the server says something changed, and asks
// before destructive actions. Every page works without this script; the server-side
// confirmation checkbox, not the prompt here, is what guards an action.
(function () {
  "use strict";

  var MIN_INTERVAL_MS = 1000;
  var source = null;
  var busy = false;      // a fetch is in flight
  var again = false;     // a refresh arrived while busy
  var timer = null;      // a refresh waiting for the interval to pass
  var lastStart = 0;
  var edited = false;    // a form was changed since the last swap
  var stale = false;     // a refresh was skipped while the tab was hidden

  function main() {
    return document.getElementById("main");
  }

  // A user reading or typing inside #main must not lose their place: skip while
  // anything in it has focus (form controls, links, scrollable tables) or was edited.
  function blocked() {
    var m = main();
    if (!m || edited) {
      return true;
    }
    var active = document.activeElement;
    return !!(active && active !== document.body && m.contains(active));
  }

  function schedule() {
    if (timer !== null) {
      return;
    }
    var wait = Math.max(0, lastStart + MIN_INTERVAL_MS - Date.now());
    timer = window.setTimeout(function () {
      timer = null;
      refresh();
    }, wait);
  }

  function refresh() {
    if (document.hidden) {
      stale = true;
      return;
    }
    if (busy) {
      again = true;
      return;
    }
    if (Date.now() - lastStart < MIN_INTERVAL_MS) {
      schedule();
      return;
    }
    if (blocked()) {
      return;
    }
    busy = true;
    lastStart = Date.now();
    fetch(location.href, {
      credentials: "same-origin",
      headers: { "Accept": "text/html" },
      cache: "no-store"
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("refresh answered " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        // The user may have started typing while the page was on its way.
        if (blocked()) {
          return;
        }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("main");
        var m = main();
        if (!fresh || !m) {
          return;
        }
        m.replaceChildren.apply(m, Array.prototype.slice.call(fresh.childNodes));
        edited = false;
      })
      .catch(function () {
        // Keep the page as it is; the next event tries again.
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          schedule();
        }
      });
  }

  function open() {
    var url = document.body && document.body.dataset.live;
    if (!url || source !== null || typeof EventSource === "undefined") {
      return;
    }
    source = new EventSource(url);
    source.addEventListener("refresh", refresh);
  }

  function close() {
    if (source !== null) {
      source.close();
      source = null;
    }
  }

  function markEdited(event) {
    var target = event.target;
    if (target && target.form) {
      edited = true;
    }
  }

  document.addEventListener("input", markEdited, true);
  document.addEventListener("change", markEdited, true);

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.classList || !form.classList.contains("danger")) {
      return;
    }
    var question = form.getAttribute("data-confirm") || "Are you sure? This cannot be undone.";
    if (!window.confirm(question)) {
      event.preventDefault();
    }
  });

  // A hidden tab gives its connection back: browsers allow six per host over HTTP/1.1,
  // so a seventh console tab would otherwise wait forever. Visible again, it catches up.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (source !== null) {
        close();
        stale = true;
      }
      return;
    }
    open();
    if (stale) {
      stale = false;
      refresh();
    }
  });

  window.addEventListener("pagehide", close);
  // Back from the back/forward cache: the connection was closed on pagehide.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      open();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", open);
  } else {
    open();
  }
})();
