// Live countdowns for token and certificate-key expiries, and confirmations. No dependencies.
// Copy buttons ([data-copy]) are handled for every page by kubeboard/kubeboard.js.
(function () {
  "use strict";
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function format(ms) {
    var s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600),
        m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d > 0) return d + "d " + h + "h " + pad(m) + "m";
    if (h > 0) return h + "h " + pad(m) + "m " + pad(sec) + "s";
    return m + "m " + pad(sec) + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var left = Date.parse(el.dataset.expires) - now;
      var soon = (parseFloat(el.dataset.soon || "0") || 0) * 1000;
      el.textContent = left <= 0 ? "expired" : "in " + format(left);
      el.classList.toggle("countdown-expired", left <= 0);
      el.classList.toggle("countdown-soon", left > 0 && left <= soon);
      if (left <= 0 && el.dataset.hideWhenExpired) {
        var target = document.getElementById(el.dataset.hideWhenExpired);
        if (target) target.remove();
      }
    });
  }
  // Confirmations without inline handlers (the Content-Security-Policy allows no inline script).
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  tick();
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSwap", tick);
})();
