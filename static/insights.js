// The Insights page's charts, drawn with uPlot from the page's JSON data block.
// The tables under each chart carry the same figures for readers without charts.
(function () {
  "use strict";
  var source = document.getElementById("insights-data");
  if (!source || typeof uPlot === "undefined") return;
  var data = JSON.parse(source.textContent);
  var OUTCOMES = ["approved", "rejected", "answered", "expired", "withdrawn", "pending"];
  var COLOURS = {
    approved: "#2e8b57", rejected: "#c0392b", answered: "#2f5fd0",
    expired: "#d68910", withdrawn: "#7f8c8d", pending: "#8e44ad"
  };

  function epoch(day) { return Date.parse(day + "T00:00:00Z") / 1000; }
  function width(el) { return Math.max(280, el.clientWidth || 600); }
  function named(names) {
    // category axis: a label at each whole index
    return {
      splits: function () { return names.map(function (_, i) { return i; }); },
      values: function (u, splits) { return splits.map(function (i) { return names[i] || ""; }); },
      rotate: names.length > 8 ? -45 : 0
    };
  }
  function bars() { return uPlot.paths.bars({ size: [0.7, 60] }); }

  function draw(el, options, rows) {
    options.width = width(el);
    options.height = 260;
    el.textContent = "";
    var plot = new uPlot(options, rows, el);
    el.dataset.drawn = "true";
    return plot;
  }

  var charts = {
    ttd: function (el) {
      var days = data.days.filter(function (d) { return d.timeToDecision.decided > 0; });
      return draw(el, {
        scales: { x: { time: true } },
        axes: [{}, { label: "seconds" }],
        series: [
          {},
          { label: "p50", stroke: "#2f5fd0", width: 2, points: { show: true } },
          { label: "p90", stroke: "#d68910", width: 2, points: { show: true } }
        ]
      }, [
        days.map(function (d) { return epoch(d.key); }),
        days.map(function (d) { return d.timeToDecision.p50; }),
        days.map(function (d) { return d.timeToDecision.p90; })
      ]);
    },
    outcomes: function (el) {
      var tools = data.tools;
      var names = tools.map(function (t) { return t.key || "(no tool)"; });
      // stacked: each series is the running sum up to its outcome, drawn last-first
      var stacks = [];
      var running = tools.map(function () { return 0; });
      OUTCOMES.forEach(function (name) {
        running = running.map(function (v, i) { return v + tools[i].outcomes[name]; });
        stacks.push(running.slice());
      });
      var order = OUTCOMES.map(function (_, i) { return i; }).reverse();
      return draw(el, {
        scales: { x: { time: false, range: [-0.5, Math.max(names.length - 0.5, 0.5)] } },
        axes: [named(names), { label: "approvals" }],
        series: [{ label: "tool", value: function (u, i) { return i == null ? "" : names[i]; } }].concat(
          order.map(function (i) {
            var name = OUTCOMES[i];
            return { label: name, fill: COLOURS[name], stroke: COLOURS[name], paths: bars(), points: { show: false } };
          })
        )
      }, [names.map(function (_, i) { return i; })].concat(order.map(function (i) { return stacks[i]; })));
    },
    shares: function (el) {
      var days = data.days;
      function percent(v) { return v == null ? null : Math.round(v * 1000) / 10; }
      return draw(el, {
        scales: { x: { time: true }, y: { range: [0, 100] } },
        axes: [{}, { label: "% of requests" }],
        series: [
          {},
          { label: "expired", stroke: COLOURS.expired, width: 2, points: { show: true } },
          { label: "auto-approved", stroke: COLOURS.approved, width: 2, points: { show: true } }
        ]
      }, [
        days.map(function (d) { return epoch(d.key); }),
        days.map(function (d) { return percent(d.expiredShare); }),
        days.map(function (d) { return percent(d.autoApprovedShare); })
      ]);
    },
    load: function (el) {
      var people = data.reviewers;
      var names = people.map(function (r) { return r.key; });
      return draw(el, {
        scales: { x: { time: false, range: [-0.5, Math.max(names.length - 0.5, 0.5)] } },
        axes: [named(names), { label: "approvals ended" }],
        series: [
          { label: "reviewer", value: function (u, i) { return i == null ? "" : names[i]; } },
          { label: "ended", fill: "#2f5fd0", stroke: "#2f5fd0", paths: bars(), points: { show: false } }
        ]
      }, [names.map(function (_, i) { return i; }), people.map(function (r) { return r.total; })]);
    }
  };

  var drawn = [];
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var make = charts[el.dataset.chart];
    if (make) drawn.push({ el: el, plot: make(el) });
  });
  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      drawn.forEach(function (c) { c.plot.setSize({ width: width(c.el), height: 260 }); });
    }, 150);
  });
})();
