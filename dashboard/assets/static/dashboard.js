// jobrun dashboard: local times, live refresh and confirmations. No dependencies, no inline script
// (the Content-Security-Policy allows this file only).
(function () {
  "use strict";

  // Destructive actions ask first: a button's data-confirm, else its form's. A form
  // confirmed here posts confirm=1, so that the server does not ask again (without
  // this script, the server asks with a page of its own where it has to: retrying a
  // done job). Delegated, so forms that a refresh replaced work too.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var submitter = ev.submitter;
    var msg = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (form.id === "bulk") {
      var what = bulkSelection(form);
      if (!what) {
        ev.preventDefault();
        document.getElementById("bulk-count").textContent = "Tick jobs first, or all matching.";
        return;
      }
      msg = msg && msg.replace("{n}", what);
    }
    if (msg) {
      if (!window.confirm(msg)) {
        ev.preventDefault();
        return;
      }
      if (!form.querySelector("input[name=confirm]")) {
        var yes = document.createElement("input");
        yes.type = "hidden";
        yes.name = "confirm";
        yes.value = "1";
        form.appendChild(yes);
      }
    }
    var button = submitter || form.querySelector("button[type=submit]");
    if (button && form.method.toLowerCase() === "post") {
      // Against double submits; the page that answers replaces this one.
      setTimeout(function () { button.disabled = true; }, 0);
    }
  });

  // The bulk form's selection: "3 selected jobs", "all 120 matching jobs", or "".
  function bulkSelection(form) {
    if (form.querySelector("#bulk-all").checked) {
      var n = parseInt(form.getAttribute("data-matching"), 10);
      return n >= 0 ? "all " + n + " matching jobs" : "every matching job";
    }
    var k = document.querySelectorAll("input[name=ids][form=bulk]:checked").length;
    return k === 0 ? "" : k === 1 ? "1 selected job" : k + " selected jobs";
  }

  // Ticking: the header's box selects the whole page; the count shows beside the
  // buttons.
  function showPicks() {
    var form = document.getElementById("bulk");
    var page = document.getElementById("pick-page");
    if (!form || !page) {
      return;
    }
    page.hidden = false;
    var boxes = document.querySelectorAll("input[name=ids][form=bulk]");
    var ticked = document.querySelectorAll("input[name=ids][form=bulk]:checked").length;
    page.checked = boxes.length > 0 && ticked === boxes.length;
    page.indeterminate = ticked > 0 && ticked < boxes.length;
    document.getElementById("bulk-count").textContent = bulkSelection(form);
  }
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el.id === "pick-page") {
      document.querySelectorAll("input[name=ids][form=bulk]").forEach(function (box) { box.checked = el.checked; });
    }
    if (el.id === "pick-page" || el.id === "bulk-all" || (el.name === "ids" && el.getAttribute("form") === "bulk")) {
      showPicks();
    }
  });
  showPicks();

  // Absolute times come in UTC (<time data-local datetime=...>); write them in the
  // browser's zone. Their title keeps the UTC time for hover. The history charts'
  // labels and titles (SVG <text> and <title>) are written the same way, shorter:
  // "hm" 15:04, "dhm" Mon 2 15:04, then their data-suffix; their zone's name goes
  // where data-zone stands.
  function pad(n, width) {
    return String(n).padStart(width || 2, "0");
  }
  function zoneName(d) {
    try {
      var parts = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(d);
      for (var i = 0; i < parts.length; i++) {
        if (parts[i].type === "timeZoneName") {
          return parts[i].value;
        }
      }
    } catch (e) { /* an old browser: the offset below */ }
    var off = -d.getTimezoneOffset();
    return "UTC" + (off < 0 ? "-" : "+") + pad(Math.floor(Math.abs(off) / 60)) + ":" + pad(Math.abs(off) % 60);
  }
  var weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  function localize(root) {
    root.querySelectorAll("[data-local][datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) {
        return;
      }
      var format = el.getAttribute("data-local");
      var hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
      if (format === "hm" || format === "dhm") {
        var short = format === "hm" ? hm : weekdays[d.getDay()] + " " + d.getDate() + " " + hm;
        el.textContent = short + (el.getAttribute("data-suffix") || "");
        return;
      }
      var s = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
        hm + ":" + pad(d.getSeconds());
      if (format === "ms") {
        s += "." + pad(d.getMilliseconds(), 3);
      }
      el.textContent = s + " " + zoneName(d);
    });
    root.querySelectorAll("[data-zone]").forEach(function (el) {
      el.textContent = zoneName(new Date());
    });
  }
  localize(document);

  var every = parseInt(document.body.getAttribute("data-refresh"), 10);
  var toggle = document.getElementById("live");
  if (!(every > 0) || !toggle) {
    return;
  }
  try {
    toggle.checked = window.localStorage.getItem("jobrun.live") !== "off";
  } catch (e) { /* storage may be disabled */ }
  toggle.addEventListener("change", function () {
    try {
      window.localStorage.setItem("jobrun.live", toggle.checked ? "on" : "off");
    } catch (e) { /* ignore */ }
    if (toggle.checked) {
      refresh();
    }
  });

  var busy = false;

  // refresh fetches this page again and swaps in its live parts (data-live with an
  // id); the rest, such as a half-typed search, stays as it is. The fetched HTML was
  // escaped by the server and DOMParser runs no script.
  function refresh() {
    if (busy || document.hidden || !toggle.checked) {
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (res) {
        if (!res.ok) {
          throw new Error(res.status);
        }
        return res.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        localize(doc); // before comparing: an unchanged part stays as it is
        // Ticked jobs stay ticked in the fresh list.
        var ticked = {};
        document.querySelectorAll("input[name=ids]:checked").forEach(function (box) { ticked[box.value] = true; });
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh) {
            fresh.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = !!ticked[box.value]; });
            var page = fresh.querySelector("#pick-page");
            if (page) {
              page.hidden = false; // as showPicks left the page's, so that it compares equal
            }
          }
          if (fresh && fresh.outerHTML !== el.outerHTML) {
            el.replaceWith(document.importNode(fresh, true));
          }
        });
        showPicks();
        document.body.removeAttribute("data-stale");
      })
      .catch(function () {
        document.body.setAttribute("data-stale", "");
      })
      .finally(function () {
        busy = false;
      });
  }

  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
