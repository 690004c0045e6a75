// Live view of one operation: replay everything after the last sequence number seen, then
// follow. Reconnects resume from that number, so nothing is lost or shown twice.
// Every message from the server is put on the page with textContent, never as HTML.
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log) { return; }
  var page = document.getElementById("operation");
  var stateLabel = document.getElementById("connection-state");
  var statusBadge = document.getElementById("operation-status");
  var errorBox = document.getElementById("operation-error");
  var hintBox = document.getElementById("hints");
  var hintList = document.getElementById("hint-list");
  var progress = document.getElementById("progress");
  var progressBar = document.getElementById("progress-bar");
  var cancelForm = document.getElementById("cancel-form");
  var resumeForm = document.getElementById("resume-form");
  var filterBox = document.getElementById("log-filter");
  var filterName = document.getElementById("log-filter-name");
  var lastSeq = 0;
  var retryDelay = 500;
  var filterKey = null;
  var active = ["queued", "running"];
  var resumable = ["failed", "interrupted", "cancelled"];
  var done = ["succeeded", "skipped"];
  var searchBox = document.getElementById("log-search");
  var searchCount = document.getElementById("log-search-count");
  var followButton = document.getElementById("log-follow");
  var nextStep = document.getElementById("next-step-link");
  var searchText = "";
  var following = true;
  var socketOpen = false;
  // The one status vocabulary of every page (core.formatting.STATUS_WORDS), read from the page.
  var words = {};
  try { words = JSON.parse(page.dataset.statusWords || "{}"); } catch (ignored) { words = {}; }
  function word(status) { return words[status] || status; }
  // The server's clock, so the live elapsed time does not depend on the browser's.
  var clockOffset = page && page.dataset.serverNow ? Date.parse(page.dataset.serverNow) - Date.now() : 0;
  // Close codes after which retrying cannot help (the distributed server sends them after accepting).
  var finalCloses = {4400: "the server refused the request (bad parameters)",
                     4401: "not logged in any more: reload the page to log in",
                     4403: "not allowed to follow this operation",
                     4404: "this operation no longer exists"};

  // "live" only while the stream is open and the operation can still change; the label says
  // when the stream ended (the operation finished, or the connection closed) and why.
  function setConnection(text, state) {
    stateLabel.textContent = text;
    stateLabel.dataset.state = state;
    stateLabel.className = "status status-" + (state === "live" ? "running" : state === "ended" ? "ended" : "failed");
  }

  function showStreamState() {
    var status = statusBadge.dataset.status;
    if (!socketOpen) { return; }
    if (active.indexOf(status) >= 0) { setConnection("live", "live"); }
    else { setConnection("ended: operation " + word(status).toLowerCase() + "; the log is complete", "ended"); }
  }

  // "0.96 s", "12.3 s", "2 min 5 s", "1 h 3 min" (the same as operations.formatting.seconds_text).
  function formatSeconds(seconds) {
    if (seconds < 10) { return seconds.toFixed(2) + " s"; }
    if (seconds < 60) { return seconds.toFixed(1) + " s"; }
    var whole = Math.round(seconds);
    var hours = Math.floor(whole / 3600), minutes = Math.floor((whole % 3600) / 60), secs = whole % 60;
    return hours ? hours + " h " + minutes + " min" : minutes + " min " + secs + " s";
  }

  function keyOf(event) { return event.group ? event.group + ":" + event.phase : event.phase; }

  function phaseRow(key) {
    return document.querySelector('.phase[data-key="' + CSS.escape(key) + '"]');
  }

  // A hint's page addresses in parentheses become links ("(/clusters/beta/#reset-node)"), as the
  // page's own "linked" filter renders them.
  function fillLinked(element, text) {
    element.textContent = "";
    var pattern = /\((\/[\w.\/#?=-]*)\)/g, last = 0, match;
    text = text || "";
    while ((match = pattern.exec(text)) !== null) {
      element.appendChild(document.createTextNode(text.substring(last, match.index) + "("));
      var link = document.createElement("a");
      link.href = match[1];
      link.textContent = match[1];
      element.appendChild(link);
      element.appendChild(document.createTextNode(")"));
      last = pattern.lastIndex;
    }
    element.appendChild(document.createTextNode(text.substring(last)));
  }

  function setHint(key, hint) {
    var item = hintList.querySelector('li[data-key="' + CSS.escape(key) + '"]');
    if (!hint) {
      if (item) { item.remove(); }
    } else {
      if (!item) {
        item = document.createElement("li");
        item.dataset.key = key;
        hintList.appendChild(item);
      }
      fillLinked(item, key + ": " + hint);
    }
    hintBox.hidden = hintList.children.length === 0;
  }

  function updateProgress() {
    var rows = document.querySelectorAll(".phase");
    var finished = 0;
    rows.forEach(function (row) { if (done.indexOf(row.dataset.status) >= 0) { finished += 1; } });
    progress.textContent = finished + " of " + rows.length + " phases done";
    progress.dataset.done = finished;
    progressBar.value = finished;
  }

  function updateAttempt(row, event) {
    var attempts = row.querySelector(".attempts");
    var number = event.data.attempt;
    if (!attempts || !number) { return; }
    var body = attempts.querySelector("tbody");
    var line = body.querySelector('tr[data-attempt="' + number + '"]');
    if (!line) {
      line = document.createElement("tr");
      line.dataset.attempt = number;
      ["number", "how", "attempt-status", "started", "attempt-duration", "worker", "attempt-exit", "attempt-error",
       "attempt-settings"]
        .forEach(function (name) { var cell = document.createElement("td"); cell.className = name; line.appendChild(cell); });
      line.children[0].textContent = number;
      line.children[1].textContent = number === 1 ? "First run" : "Resumed";
      line.children[3].textContent = event.time.substring(11, 19);
      body.appendChild(line);
    }
    line.className = "attempt-" + event.data.status;
    line.querySelector(".attempt-status").textContent = word(event.data.status);
    if (event.data.duration !== undefined) {
      line.querySelector(".attempt-duration").textContent = formatSeconds(event.data.duration);
    }
    if (event.data.exit_status !== undefined) { line.querySelector(".attempt-exit").textContent = event.data.exit_status; }
    line.querySelector(".attempt-error").textContent = event.data.error || "";
    if (event.data.changes) {
      line.querySelector(".attempt-settings").textContent = event.data.changes.map(function (change) {
        return "attempt " + number + ": " + change;
      }).join("\n");
    }
    row.querySelector(".attempt-count").textContent = number;
    attempts.hidden = false;
    if (number > 1) { attempts.open = true; }
  }

  function updatePhase(event) {
    var key = keyOf(event);
    var row = phaseRow(key);
    if (!row) { return; }
    var status = event.data.status;
    row.className = "phase phase-" + status;
    row.dataset.status = status;
    row.querySelector(".phase-status").textContent = word(status);
    var duration = row.querySelector(".phase-duration");
    if (status === "running") {
      row.dataset.started = event.time;
      duration.textContent = "";
    } else {
      row.dataset.started = "";
      if (event.data.duration !== undefined) { duration.textContent = formatSeconds(event.data.duration); }
    }
    row.querySelector(".phase-error").textContent = status === "running" ? "" : (event.data.error || "");
    fillLinked(row.querySelector(".phase-hint"), event.data.hint || "");
    if (status === "skipped") {
      row.querySelector(".phase-skip").textContent = event.message;
    }
    setHint(key, status === "running" ? "" : event.data.hint);
    updateAttempt(row, event);
    var choice = document.querySelector('.skip-choice[data-key="' + CSS.escape(key) + '"]');
    if (choice) { choice.hidden = done.indexOf(status) >= 0; }
    updateProgress();
  }

  function updateStatus(event) {
    var status = event.data.status;
    statusBadge.className = "status status-" + status;
    statusBadge.dataset.status = status;
    statusBadge.textContent = word(status);
    if (event.data.error) { errorBox.textContent = event.data.error; errorBox.hidden = false; }
    else if (active.indexOf(status) >= 0) { errorBox.hidden = true; }
    if (cancelForm) { cancelForm.hidden = active.indexOf(status) < 0; }
    if (resumeForm) { resumeForm.hidden = resumable.indexOf(status) < 0; }
    // Nothing more arrives once the operation has ended: Pause/Follow has nothing to follow.
    if (followButton) { followButton.hidden = active.indexOf(status) < 0; }
    // The way on: the server's link to the next step, or (rendered while it ran) the cluster page's.
    if (nextStep) {
      nextStep.hidden = active.indexOf(status) >= 0 || (nextStep.dataset.generic === "yes" && status !== "succeeded");
    }
    showStreamState();
  }

  // The counts are those of the phase's latest attempt, as kubeadm printed them: kubeadm's closing
  // "error execution phase …" line restates the errors above it and counts only when alone.
  function resetCounts(row) {
    row.querySelectorAll(".count-warning, .count-error").forEach(function (badge) {
      badge.dataset.count = 0;
      badge.textContent = "";
    });
  }

  function countLevel(event) {
    if (event.kind === "phase" && event.data.status === "running") {
      var started = phaseRow(keyOf(event));
      if (started) { resetCounts(started); }
      return;
    }
    if (event.kind !== "log" || (event.level !== "warning" && event.level !== "error")) { return; }
    var row = phaseRow(keyOf(event));
    if (!row) { return; }
    var badge = row.querySelector(".count-" + event.level);
    if (event.data && event.data.summary && Number(badge.dataset.count) > 0) { return; }
    var count = Number(badge.dataset.count) + 1;
    badge.dataset.count = count;
    badge.textContent = count + (event.level === "warning" ? (count === 1 ? " warning" : " warnings")
                                                           : (count === 1 ? " error" : " errors"));
  }

  function applyFilter(line) {
    var inPhase = filterKey === null || line.dataset.key === filterKey;
    var matches = searchText !== "" && line.textContent.toLowerCase().indexOf(searchText) >= 0;
    line.hidden = !inPhase || (searchText !== "" && !matches);
    line.classList.toggle("match", matches);
  }

  function countMatches() {
    if (!searchCount) { return; }
    if (searchText === "") { searchCount.textContent = ""; return; }
    var found = log.querySelectorAll(".line.match:not([hidden])").length;
    searchCount.textContent = found + (found === 1 ? " line matches" : " lines match");
  }

  function setSearch(text) {
    searchText = text.trim().toLowerCase();
    Array.prototype.forEach.call(log.children, applyFilter);
    countMatches();
    if (following) { log.scrollTop = log.scrollHeight; }
  }

  // Follow: new lines scroll into view. Pause (or scrolling up) keeps the view where it is.
  function setFollow(on) {
    following = on;
    if (!followButton) { return; }
    followButton.textContent = on ? "Pause" : "Follow";
    followButton.setAttribute("aria-pressed", on ? "true" : "false");
    followButton.title = on ? "Stop scrolling to new lines" : "Scroll to the newest line and keep following";
    if (on) { log.scrollTop = log.scrollHeight; }
  }

  function setFilter(key) {
    filterKey = key;
    filterBox.hidden = key === null;
    filterName.textContent = key || "";
    document.querySelectorAll(".phase").forEach(function (row) {
      row.classList.toggle("phase-selected", key !== null && row.dataset.key === key);
    });
    Array.prototype.forEach.call(log.children, applyFilter);
    countMatches();
    log.scrollTop = log.scrollHeight;
  }

  function render(events) {
    var fragment = document.createDocumentFragment();
    events.forEach(function (event) {
      if (event.seq <= lastSeq) { return; }  // the server never repeats, but a stale socket might
      lastSeq = event.seq;
      if (event.kind === "phase") { updatePhase(event); }
      if (event.kind === "status") { updateStatus(event); }
      countLevel(event);
      var line = document.createElement("div");
      line.className = "line level-" + event.level + " kind-" + event.kind;
      line.dataset.seq = event.seq;
      line.dataset.key = event.phase ? keyOf(event) : "";
      if (event.source) { line.dataset.source = event.source; }
      var time = event.time.substring(11, 23);
      line.textContent = time + (event.phase ? " [" + keyOf(event) + "] " : " ") + event.message;
      applyFilter(line);
      fragment.appendChild(line);
    });
    log.appendChild(fragment);
    log.dataset.lastSeq = lastSeq;
    if (searchText !== "") { countMatches(); }
    if (following) { log.scrollTop = log.scrollHeight; }
  }

  function tick() {
    var now = Date.now() + clockOffset;
    document.querySelectorAll('.phase[data-status="running"]').forEach(function (row) {
      if (row.dataset.started) {
        var elapsed = Math.max(0, (now - Date.parse(row.dataset.started)) / 1000);
        row.querySelector(".phase-duration").textContent = formatSeconds(elapsed) + " …";
      }
    });
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + log.dataset.wsPath + "?after=" + lastSeq);
    socket.onopen = function () { retryDelay = 500; socketOpen = true; showStreamState(); };
    var refusal = "";
    socket.onmessage = function (message) {
      var payload = JSON.parse(message.data);
      if (payload.type === "events") { render(payload.events); }
      // The server says why before it closes with a 44xx code.
      if (payload.type === "refused") { refusal = payload.message || ""; }
    };
    socket.onclose = function (event) {
      socketOpen = false;
      if (finalCloses[event.code]) {
        setConnection("stopped: " + (refusal || finalCloses[event.code]), "stopped");
        stateLabel.dataset.closeCode = event.code;
        return;
      }
      setConnection("reconnecting…", "reconnecting");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  document.querySelectorAll(".phase .phase-name").forEach(function (button) {
    button.addEventListener("click", function () {
      var key = button.closest(".phase").dataset.key;
      setFilter(filterKey === key ? null : key);
    });
  });
  if (searchBox) { searchBox.addEventListener("input", function () { setSearch(searchBox.value); }); }
  if (followButton) { followButton.addEventListener("click", function () { setFollow(!following); }); }
  // A person scrolling up to read pauses following (never the script's own scrolling).
  log.addEventListener("wheel", function (event) { if (event.deltaY < 0 && following) { setFollow(false); } });
  log.addEventListener("touchmove", function () { if (following) { setFollow(false); } });
  var clear = document.getElementById("log-filter-clear");
  if (clear) { clear.addEventListener("click", function () { setFilter(null); }); }
  if (cancelForm) {
    cancelForm.addEventListener("submit", function (event) {
      if (!window.confirm(cancelForm.dataset.confirm)) { event.preventDefault(); }
    });
  }

  window.kubeboardLastSeq = function () { return lastSeq; };
  setInterval(tick, 1000);
  connect();
})();
