(function () {
  "use strict";
  var panel = document.getElementById("panel");
  var title = document.getElementById("panel-title");
  var body = document.getElementById("panel-body");
  var cache = {};
  function details(tid) {
    if (!cache[tid]) {
      var el = document.getElementById("d-" + tid);
      cache[tid] = el ? JSON.parse(el.textContent) : [];
    }
    return cache[tid];
  }
  function row(label, value, cls) {
    var dt = document.createElement("dt");
    dt.textContent = label;
    if (cls) { dt.className = cls; }
    body.appendChild(dt);
    if (cls) { return; }
    var dd = document.createElement("dd");
    dd.textContent = typeof value === "string" ? value : JSON.stringify(value);
    body.appendChild(dd);
  }
  function show(g) {
    var d = details(g.getAttribute("data-t"))[+g.getAttribute("data-i")];
    if (!d) { return; }
    var prev = document.querySelectorAll("g.sp.hl");
    for (var i = 0; i < prev.length; i++) { prev[i].classList.remove("hl"); }
    g.classList.add("hl");
    title.textContent = d.name;
    while (body.firstChild) { body.removeChild(body.firstChild); }
    row("service", d.service); row("role", d.role); row("kind", d.kind);
    row("status", d.status + (d.message ? ": " + d.message : ""));
    row("start", "+" + d.start); row("duration", d.duration);
    if (d.self !== null) { row("self time", d.self); }
    if (d.critical !== null) { row("critical path", d.critical); }
    row("span id", d.span_id); if (d.parent) { row("parent", d.parent); }
    var keys = Object.keys(d.tokens);
    if (keys.length) { row("tokens", "", "sec"); keys.forEach(function (k) { row(k, String(d.tokens[k])); }); }
    keys = Object.keys(d.attributes);
    if (keys.length) { row("attributes", "", "sec"); keys.forEach(function (k) { row(k, d.attributes[k]); }); }
    if (d.events.length) {
      row("events", "", "sec");
      d.events.forEach(function (e) { row("+" + e.at, e.name + (Object.keys(e.attributes).length ? " " + JSON.stringify(e.attributes) : "")); });
    }
    panel.hidden = false;
  }
  document.addEventListener("click", function (ev) {
    var g = ev.target.closest ? ev.target.closest("g.sp") : null;
    if (g) { show(g); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { panel.hidden = true; return; }
    if (ev.key === "Enter" && document.activeElement && document.activeElement.matches("g.sp")) { show(document.activeElement); }
  });
  document.getElementById("panel-close").addEventListener("click", function () { panel.hidden = true; });
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (id.indexOf("wf-") !== 0) { return; }
    var el = document.getElementById(id);
    if (!el) { return; }
    for (var p = el; p; p = p.parentElement) { if (p.tagName === "DETAILS") { p.open = true; } }
    var hl = document.querySelectorAll("details.hl");
    for (var i = 0; i < hl.length; i++) { hl[i].classList.remove("hl"); }
    var card = el.closest("details.waterfall");
    if (card) { card.classList.add("hl"); }
    if (el.matches("g.sp")) { show(el); }
    el.scrollIntoView({block: "center"});
  }
  window.addEventListener("hashchange", reveal);
  if (location.hash) { reveal(); }
})();
