// The dashboard's totals, refreshed without a reload: every 10 seconds, the same numbers as
// `mailer status --json` from /dashboard/totals.json (same origin, the session's cookie).
(function () {
  "use strict";
  var box = document.getElementById("totals");
  if (!box || !window.fetch) { return; }
  var every = 10000;
  function put(selector, value) {
    var cell = box.querySelector(selector);
    if (cell && cell.textContent !== String(value)) { cell.textContent = String(value); }
  }
  function refresh() {
    fetch(box.getAttribute("data-source"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (totals) {
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
        var stamp = document.getElementById("updated");
        if (stamp) { stamp.textContent = "ปรับล่าสุด " + new Date().toLocaleTimeString("th-TH"); }
      })
      .catch(function () { /* the next tick tries again */ });
  }
  var seconds = Number(box.getAttribute("data-every"));
  if (seconds > 0) { every = seconds * 1000; }
  setInterval(refresh, every);
})();
