// timebucket console: progressive enhancement only. Every page works without this script:
// forms submit with their buttons, refresh falls back to <noscript><meta refresh>, and charts
// keep their native tooltips.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Range picker: a preset applies at once; "custom" reveals the date fields and waits for Apply.
  var picker = document.querySelector("form[data-picker]");
  if (picker) {
    var range = picker.elements.namedItem("range");
    var custom = picker.querySelector(".custom");
    var syncCustom = function () {
      var on = range.value === "custom";
      custom.hidden = !on;
      custom.querySelectorAll("input").forEach(function (input) {
        input.disabled = !on;
      });
    };
    syncCustom();
    range.addEventListener("change", function () {
      syncCustom();
      if (range.value === "custom") {
        custom.querySelector("input").focus();
      } else {
        picker.requestSubmit();
      }
    });
  }
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      select.form.requestSubmit();
    });
  });

  // Auto-refresh: reload after the chosen period, but never while the tab is hidden.
  var seconds = Number(document.body.getAttribute("data-refresh") || "0");
  if (seconds > 0) {
    var due = false;
    window.setTimeout(function () {
      if (document.hidden) {
        due = true;
      } else {
        window.location.reload();
      }
    }, seconds * 1000);
    document.addEventListener("visibilitychange", function () {
      if (due && !document.hidden) {
        window.location.reload();
      }
    });
  }

  // Charts: the step under the pointer (or finger) is read out above the chart.
  document.querySelectorAll("figure.chart").forEach(function (figure) {
    var readout = figure.querySelector(".readout");
    var current = null;
    figure.querySelectorAll("rect.hit").forEach(function (rect) {
      rect.addEventListener("pointerenter", function () {
        if (current) {
          current.classList.remove("on");
        }
        current = rect;
        rect.classList.add("on");
        readout.textContent = rect.textContent;
      });
    });
    figure.querySelector(".plot").addEventListener("pointerleave", function () {
      if (current) {
        current.classList.remove("on");
      }
      current = null;
      readout.textContent = "";
    });
  });
})();
