// Rampart dashboard: fills in live numbers and rows from Server-Sent Events. It writes
// text only (textContent, setAttribute), never HTML, and loads nothing from elsewhere.
"use strict";

(function () {
  var HISTORY = 120;

  function $(id) { return document.getElementById(id); }

  function text(id, value) {
    var el = $(id);
    if (el) { el.textContent = value; }
  }

  function pct(v) { return (v * 100).toFixed(1) + "%"; }

  function ms(v) {
    if (v === null || v === undefined) { return "\u2013"; }
    if (v >= 10000) { return "> 10 s"; }
    return "\u2264 " + v + " ms";
  }

  // The same scaling as the server's first drawing (pages::points).
  function points(values) {
    var max = 0, out = [], i, v, offset = Math.max(0, HISTORY - values.length);
    for (i = 0; i < values.length; i++) {
      if (values[i] !== null && values[i] > max) { max = values[i]; }
    }
    for (i = 0; i < values.length; i++) {
      v = values[i];
      if (v === null) { continue; }
      var x = (offset + i) * 240 / (HISTORY - 1);
      var y = max > 0 ? 46 - v / max * 44 : 46;
      out.push(x.toFixed(1) + "," + y.toFixed(1));
    }
    return out.join(" ");
  }

  function spark(id, values) {
    var el = $(id);
    if (el) { el.setAttribute("points", points(values)); }
  }

  function cell(tr, value, className) {
    var td = document.createElement("td");
    if (className) { td.className = className; }
    td.textContent = value;
    tr.appendChild(td);
    return td;
  }

  function svgBar(share) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "bar");
    svg.setAttribute("viewBox", "0 0 100 8");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    var rect = document.createElementNS(ns, "rect");
    rect.setAttribute("width", String(share));
    rect.setAttribute("height", "8");
    svg.appendChild(rect);
    return svg;
  }

  function status(message) { text("live-state", message); }

  function overview() {
    var source = new EventSource("/ui/live/overview");
    source.addEventListener("overview", function (event) {
      var o = JSON.parse(event.data);
      var last = function (a) { return a.length ? a[a.length - 1] : null; };
      text("v-total", String(o.total));
      text("v-rps", String(Math.round(last(o.rps) || 0)));
      text("v-errors", pct(last(o.errors) || 0));
      text("v-refused", pct(last(o.refused) || 0));
      text("v-p50", ms(last(o.p50)));
      text("v-p99", ms(last(o.p99)));
      spark("s-rps", o.rps);
      spark("s-errors", o.errors);
      spark("s-refused", o.refused);
      spark("s-p99", o.p99);
      var body = $("denials");
      if (!body) { return; }
      while (body.firstChild) { body.removeChild(body.firstChild); }
      var max = o.denials.length ? Math.max(1, o.denials[0][1]) : 1;
      o.denials.forEach(function (d) {
        var tr = document.createElement("tr");
        var code = document.createElement("code");
        code.textContent = d[0];
        cell(tr, "").appendChild(code);
        cell(tr, String(d[1]), "num");
        cell(tr, "").appendChild(svgBar(Math.floor(d[1] * 100 / max)));
        body.appendChild(tr);
      });
      var none = $("denials-none");
      if (none) { none.classList.toggle("sr", o.denials.length > 0); }
    });
  }

  function clock(unix) {
    var s = unix % 86400;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return two(Math.floor(s / 3600)) + ":" + two(Math.floor(s / 60) % 60) + ":" + two(s % 60);
  }

  function matches(tr) {
    var q = ($("filter") || {}).value || "";
    var kind = ($("kind") || {}).value || "";
    q = q.toLowerCase();
    return (!kind || tr.getAttribute("data-kind") === kind) &&
      (!q || tr.textContent.toLowerCase().indexOf(q) >= 0);
  }

  function refilter() {
    var rows = $("decisions").rows, i;
    for (i = 0; i < rows.length; i++) { rows[i].classList.toggle("hidden", !matches(rows[i])); }
  }

  function decisions() {
    var table = $("decision-table");
    var body = $("decisions");
    var after = table.getAttribute("data-after") || "0";
    $("filter").addEventListener("input", refilter);
    $("kind").addEventListener("change", refilter);
    var source = new EventSource("/ui/live/decisions?after=" + encodeURIComponent(after));
    source.onopen = function () { status("live"); };
    source.onerror = function () { status("reconnecting\u2026"); };
    source.addEventListener("decisions", function (event) {
      var rows = JSON.parse(event.data);
      rows.forEach(function (e) {
        var tr = document.createElement("tr");
        tr.setAttribute("data-kind", e.kind);
        tr.className = "new";
        var time = document.createElement("time");
        time.setAttribute("datetime", String(e.at));
        time.textContent = clock(e.at);
        cell(tr, "").appendChild(time);
        var kind = document.createElement("span");
        kind.className = "kind " + e.kind;
        kind.textContent = e.kind;
        cell(tr, "").appendChild(kind);
        cell(tr, e.route || "\u2013");
        cell(tr, e.consumer || "\u2013");
        cell(tr, e.client_ip);
        cell(tr, e.method);
        cell(tr, String(e.status), "num");
        var code = document.createElement("code");
        code.textContent = e.code;
        cell(tr, "").appendChild(code);
        var id = document.createElement("code");
        id.textContent = e.request_id;
        cell(tr, "").appendChild(id);
        tr.classList.toggle("hidden", !matches(tr));
        body.insertBefore(tr, body.firstChild);
      });
      while (body.rows.length > 500) { body.deleteRow(body.rows.length - 1); }
      var none = $("decisions-none");
      if (none && rows.length) { none.classList.add("sr"); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.getAttribute("data-page");
    if (page === "overview") { overview(); }
    if (page === "decisions") { decisions(); }
  });
})();
