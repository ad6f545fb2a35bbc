// jobrun dashboard: local times, live refresh and confirmations. No dependencies, no inline script
// (the Content-Security-Policy allows this file only).
(function () {
  "use strict";

  // Destructive actions ask first. Delegated, so forms that a refresh replaced work too.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
      return;
    }
    var button = form.querySelector("button[type=submit]");
    if (button && form.method.toLowerCase() === "post") {
      // Against double submits; the page that answers replaces this one.
      setTimeout(function () { button.disabled = true; }, 0);
    }
  });

  // Absolute times come in UTC (<time data-local datetime=...>); write them in the
  // browser's zone. Their title keeps the UTC time for hover.
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
  function localize(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) {
        return;
      }
      var s = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
        pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
      if (el.getAttribute("data-local") === "ms") {
        s += "." + pad(d.getMilliseconds(), 3);
      }
      el.textContent = s + " " + zoneName(d);
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
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.outerHTML !== el.outerHTML) {
            el.replaceWith(document.importNode(fresh, true));
          }
        });
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
