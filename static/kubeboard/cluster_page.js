// The cluster page keeps its details (identity, read-back, audit) collapsed; a link to one of
// them (a tab, "After init" in the summary, a bookmark) opens the <details> that is or holds its
// target, so a tab always shows its section. Chromium does this for fragment navigation only
// when the target is inside a closed <details>, not the <details> itself, and not on a second
// click of the same link.
(function () {
  "use strict";
  function reveal(hash) {
    if (!hash || hash.length < 2) { return; }
    var target = document.getElementById(decodeURIComponent(hash.slice(1)));
    if (!target) { return; }
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") { node.open = true; }
    }
    target.scrollIntoView();
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest('a[href^="#"]');
    if (link) { reveal(link.getAttribute("href")); }
  });
  window.addEventListener("hashchange", function () { reveal(window.location.hash); });
  // Drain evicts Pods: asked once more (the forms come and go with the summary's live updates,
  // so the listener sits on the document).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    if (form.classList.contains("node-scheduling") && button && button.value === "drain" &&
        !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
  reveal(window.location.hash);
})();
