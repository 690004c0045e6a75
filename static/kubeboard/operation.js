// Live log of one operation: replay everything after the last sequence number seen, then
// follow. Reconnects resume from that number, so nothing is lost or shown twice.
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log) { return; }
  var stateLabel = document.getElementById("connection-state");
  var statusBadge = document.getElementById("operation-status");
  var errorBox = document.getElementById("operation-error");
  var lastSeq = 0;
  var retryDelay = 500;
  var finished = ["succeeded", "failed", "interrupted"];
  var labels = {pending: "Pending", running: "Running", succeeded: "Done", failed: "Failed", skipped: "Skipped",
                queued: "Queued", interrupted: "Interrupted"};

  function setConnection(text) { stateLabel.textContent = text; }

  function updatePhase(event) {
    var row = document.querySelector('.phase[data-phase="' + CSS.escape(event.phase) + '"]');
    if (!row) { return; }
    var status = event.data.status;
    row.className = "phase phase-" + status;
    row.dataset.status = status;
    row.querySelector(".phase-status").textContent = labels[status] || status;
    if (event.data.duration !== undefined) {
      row.querySelector(".phase-duration").textContent = event.data.duration.toFixed(2) + " s";
    } else if (status === "running") {
      row.querySelector(".phase-duration").textContent = "";
    }
    row.querySelector(".phase-error").textContent = event.data.error || "";
  }

  function updateStatus(event) {
    var status = event.data.status;
    statusBadge.className = "status status-" + status;
    statusBadge.dataset.status = status;
    statusBadge.textContent = labels[status] || status;
    if (event.data.error) { errorBox.textContent = event.data.error; errorBox.hidden = false; }
    else if (status === "running") { errorBox.hidden = true; }
  }

  function render(events) {
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    var fragment = document.createDocumentFragment();
    events.forEach(function (event) {
      if (event.seq <= lastSeq) { return; }  // the server never repeats, but a stale socket might
      lastSeq = event.seq;
      if (event.kind === "phase") { updatePhase(event); }
      if (event.kind === "status") { updateStatus(event); }
      var line = document.createElement("div");
      line.className = "line level-" + event.level + " kind-" + event.kind;
      line.dataset.seq = event.seq;
      var time = event.time.substring(11, 23);
      line.textContent = time + (event.phase ? " [" + event.phase + "] " : " ") + event.message;
      fragment.appendChild(line);
    });
    log.appendChild(fragment);
    log.dataset.lastSeq = lastSeq;
    if (atBottom) { log.scrollTop = log.scrollHeight; }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + log.dataset.wsPath + "?after=" + lastSeq);
    socket.onopen = function () { retryDelay = 500; setConnection("live"); };
    socket.onmessage = function (message) {
      var payload = JSON.parse(message.data);
      if (payload.type === "events") { render(payload.events); }
    };
    socket.onclose = function (event) {
      if (event.code === 4401 || event.code === 4403) { setConnection("not allowed to follow this operation"); return; }
      setConnection("reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  window.kubeboardLastSeq = function () { return lastSeq; };
  connect();
})();
