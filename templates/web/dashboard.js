// The dashboard, refreshed without a reload: every few seconds (data-every) the view's
// totals and the attendance of each office it shows, from /dashboard/live.json (same
// origin, the session's cookie; the same numbers as `mailer status --json`).
(function () {
  "use strict";
  var box = document.getElementById("totals");
  if (!box || !window.fetch) { return; }
  var every = 10000;
  function put(selector, value) {
    var cell = box.querySelector(selector);
    if (cell && cell.textContent !== String(value)) { cell.textContent = String(value); }
  }
  function restyle(node, status) {
    node.className = node.className.replace(/\bstatus-[a-z_]+/g, "").trim() + " status-" + status;
    node.setAttribute("data-status", status);
  }
  function departed(found) {
    // An office the page shows that the view no longer holds (it answered, on a "no
    // answer" view): its new state is not here; say the list changed.
    var gone = false;
    document.querySelectorAll("td[data-office], article.office").forEach(function (node) {
      var id = node.getAttribute("data-office") || node.id.replace(/^office-/, "");
      if (!Object.prototype.hasOwnProperty.call(found, id)) { gone = true; }
    });
    var note = document.getElementById("changed");
    if (note && gone) { note.hidden = false; }
  }
  function offices(found) {
    var cells = {};
    document.querySelectorAll("td[data-office]").forEach(function (cell) {
      var id = cell.getAttribute("data-office");
      (cells[id] = cells[id] || []).push(cell);
    });
    Object.keys(found).forEach(function (id) {
      var status = found[id][0], label = found[id][1], mark = found[id][2];
      (cells[id] || []).forEach(function (cell) {
        if (cell.getAttribute("data-status") === status) { return; }
        restyle(cell, status);
        var link = cell.querySelector("a");
        if (link) { link.setAttribute("title", label); link.textContent = mark; }
      });
      var entry = document.getElementById("office-" + id);
      var shown = entry && entry.querySelector("[data-status]");
      if (shown && shown.getAttribute("data-status") !== status) {
        restyle(shown, status);
        shown.textContent = label;
      }
    });
  }
  function refresh() {
    fetch(box.getAttribute("data-source"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (live) {
        var totals = live.totals;
        Object.keys(totals).forEach(function (key) {
          if (key === "attendance") {
            Object.keys(totals.attendance).forEach(function (a) {
              put('[data-attendance="' + a + '"]', totals.attendance[a]);
            });
          } else if (key === "invitees") {
            put('[data-total="invitees"]', totals.invitees);
          } else {
            put('[data-delivery="' + key + '"]', totals[key]);
          }
        });
        offices(live.offices);
        departed(live.offices);
        var stamp = document.getElementById("updated");
        if (stamp) { stamp.textContent = "ข้อมูล ณ " + new Date(live.read_at).toLocaleTimeString("th-TH", { timeZone: "Asia/Bangkok" }) + " น."; }
      })
      .catch(function () { /* the next tick tries again */ });
  }
  var seconds = Number(box.getAttribute("data-every"));
  if (seconds > 0) { every = seconds * 1000; }
  setInterval(refresh, every);
})();
