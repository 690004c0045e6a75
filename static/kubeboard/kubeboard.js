// Behaviour shared by every page. No inline scripts (the Content-Security-Policy forbids them).
(function () {
  "use strict";

  // Copy buttons: <button type="button" data-copy="#element-id">Copy</button> copies that element's text.
  // Handled while capturing, once, so page scripts with their own copy handler do not copy twice.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    event.stopPropagation();
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = (source.value !== undefined && source.tagName !== "PRE" ? source.value : source.textContent).trim();
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }, true);

  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (ignored) { /* nothing more we can do */ }
    area.remove();
  }
})();
