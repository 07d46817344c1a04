// Autom console: the few behaviours htmx does not cover. No build step, no dependencies.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    // Sign-in: times are shown in the browser's zone.
    var tz = document.getElementById("tz");
    if (tz && window.Intl) tz.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

    // Run detail: follow the run (WatchRun on the server) until it is finished.
    var timeline = document.querySelector("[data-stream]");
    if (timeline && window.EventSource) {
      var source = new EventSource(timeline.getAttribute("data-stream"));
      source.addEventListener("timeline", function (e) { timeline.innerHTML = e.data; });
      source.addEventListener("failed", function (e) { timeline.insertAdjacentHTML("beforeend", e.data); });
      source.addEventListener("done", function () {
        source.close();
        timeline.removeAttribute("data-stream");
        timeline.setAttribute("data-finished", "true");
        document.querySelectorAll("#cancel").forEach(function (b) { b.closest("form").remove(); });
      });
      source.onerror = function () { source.close(); };
    }

    // Editor: clicking an error puts the cursor on its line.
    document.addEventListener("click", function (e) {
      var item = e.target.closest && e.target.closest(".violations li[data-line]");
      var area = document.getElementById("yaml");
      if (!item || !area) return;
      var line = parseInt(item.getAttribute("data-line"), 10);
      var lines = area.value.split("\n");
      var pos = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
      area.focus();
      area.setSelectionRange(pos, pos + (lines[line - 1] || "").length);
    });
  });
})();
