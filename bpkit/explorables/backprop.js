/* bpkit explorable "Backprop, step by step" (bpkit/explore.py writes its data).
   Plain JavaScript, no dependencies; MIT, part of bpkit. Every number it shows was
   computed in Python by bpkit and arrives as text in the figure's JSON. */
(function () {
  "use strict";
  var X = (window.bpkitExplore = window.bpkitExplore || {});
  if (X.backprop) return;
  var NS = "http://www.w3.org/2000/svg";
  var CSS =
    ".bpkit-explorable .bpx-controls{display:flex;flex-wrap:wrap;gap:.4em;" +
    "align-items:center;margin:.3em 0}" +
    ".bpkit-explorable button,.bpkit-explorable select{font:inherit;font-size:15px;" +
    "color:#1a1a1a;background:#f4f4f4;border:1px solid #777;border-radius:4px;" +
    "padding:.2em .6em;cursor:pointer}" +
    ".bpkit-explorable button:disabled{color:#999;border-color:#bbb;cursor:default}" +
    ".bpkit-explorable button:focus-visible,.bpkit-explorable select:focus-visible," +
    ".bpkit-explorable [tabindex]:focus-visible{outline:3px solid #1f5fa8;" +
    "outline-offset:2px}" +
    ".bpkit-explorable svg{display:block;width:100%;height:auto;background:#fff}" +
    ".bpkit-explorable .bpx-panel{font-size:15px;line-height:1.45;min-height:8.5em;" +
    "border-bottom:1px solid #ccc;padding-bottom:.3em;margin-bottom:.3em}" +
    ".bpkit-explorable .bpx-panel p{margin:.2em 0}" +
    ".bpkit-explorable .bpx-panel ul{margin:.2em 0 .2em 1.2em;padding:0}" +
    ".bpkit-explorable .bpx-late{color:#b03020;font-weight:bold}" +
    ".bpkit-explorable table{border-collapse:collapse;margin:.3em 0;font-size:15px}" +
    ".bpkit-explorable td,.bpkit-explorable th{border:1px solid #ccc;padding:.1em .5em;" +
    "text-align:right;color:#1a1a1a;background:#fff}" +
    ".bpkit-explorable .bpx-counter{font-size:15px;margin-left:.3em}";

  function css() {
    if (document.getElementById("bpkit-explore-css-backprop")) return;
    var s = document.createElement("style");
    s.id = "bpkit-explore-css-backprop";
    s.textContent = CSS;
    document.head.appendChild(s);
  }
  /* helpers.js: h() makes an HTML element, s() an SVG one */

  X.backprop = function (id) {
    var root = document.getElementById(id + "-root");
    if (!root || root.getAttribute("data-ready")) return;
    root.setAttribute("data-ready", "1");
    css();
    var data = JSON.parse(document.getElementById(id + "-data").textContent);
    var ex = null; // the example shown
    var k = 0; // the step shown: 0 .. forward + backward
    var view = {}; // svg elements of the example shown

    var controls = h("div", { class: "bpx-controls" }, root);
    h("label", { for: id + "-example" }, controls, "Example:");
    var select = h("select", { id: id + "-example", style: "width:auto;max-width:100%" },
                   controls);
    data.examples.forEach(function (e, i) {
      h("option", { value: String(i) }, select, e.title);
    });
    var buttons = {};
    [["reset", "Reset", "Back to the start"],
     ["back", "\u25C0 Back", "One step back"],
     ["step", "Step \u25B6", "One step forward"],
     ["end", "To the end", "Run both passes to the end"]].forEach(function (b) {
      buttons[b[0]] = h("button", { type: "button", "data-action": b[0], title: b[2] },
                        controls, b[1]);
    });
    var counter = h("span", { class: "bpx-counter", id: id + "-counter" }, controls);
    var note = h("p", { class: "bpx-note", id: id + "-note",
                        style: "margin:.2em 0;font-size:15px" }, root);
    var panel = h("div", { class: "bpx-panel", id: id + "-panel", "aria-live": "polite" },
                  root);
    var holder = h("div", {}, root);
    var status = h("p", { id: id + "-status" }, panel);
    var current = h("p", { id: id + "-current" }, panel);
    current.appendChild(document.createTextNode("Node "));
    var curName = h("b", { "data-field": "name" }, current);
    current.appendChild(document.createTextNode(": value "));
    var curValue = h("span", { "data-field": "value" }, current);
    current.appendChild(document.createTextNode(", adjoint "));
    var curAdjoint = h("span", { "data-field": "adjoint" }, current);
    var pushes = h("ul", { id: id + "-pushes" }, panel);
    var result = h("div", { id: id + "-result" }, panel);

    function total() {
      return ex.forward.length + ex.backward.length;
    }

    function draw() {
      holder.textContent = "";
      var W = ex.width, H = ex.height, bw = ex.box[0], bh = ex.box[1];
      var svg = s("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H,
                           role: "img", "aria-labelledby": id + "-svgtitle",
                           style: "max-width:" + W + "px" }, holder);
      s("title", { id: id + "-svgtitle" }, svg,
        "Computation graph of " + ex.title + ": " + ex.nodes.length + " nodes, " +
        ex.edges.length + " edges; inputs on the left, the output on the right.");
      var defs = s("defs", {}, svg);
      [["arrow", "#555"], ["arrow-fwd", "#1f5fa8"], ["arrow-bwd", "#c0392b"]].forEach(
        function (m) {
          var mk = s("marker", { id: id + "-" + m[0], viewBox: "0 0 10 10", refX: "9",
                                 refY: "5", markerWidth: "10", markerHeight: "10",
                                 markerUnits: "userSpaceOnUse", orient: "auto" }, defs);
          s("path", { d: "M0,0 L10,5 L0,10 z", fill: m[1] }, mk);
        });
      view = { edges: [], nodes: [], labels: [] };
      var gEdges = s("g", {}, svg), gNodes = s("g", {}, svg), gLabels = s("g", {}, svg);
      ex.edges.forEach(function (e) {
        // from the bottom of the input's box to the top of its user's box; an edge that
        // skips layers runs from side to side, bowing around the boxes between, away
        // from the middle
        var a = ex.nodes[e.from], b = ex.nodes[e.to];
        var x0 = a.x, y0 = a.y + bh / 2, x1 = b.x, y1 = b.y - bh / 2 - 2;
        var span = Math.max(1, Math.round((b.y - a.y) / ex.row));
        var cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
        if (span > 1) {
          var side = (a.x + b.x) / 2 < W / 2 ? -1 : 1;
          x0 = a.x + side * bw / 2;
          y0 = a.y;
          x1 = b.x + side * (bw / 2 + 2);
          y1 = b.y;
          cx = (side < 0 ? Math.min(x0, x1) : Math.max(x0, x1)) + side * (60 + 20 * span);
          cy = (y0 + y1) / 2;
        }
        if (e.rep) cx += (e.rep % 2 ? 1 : -1) * 40 * Math.ceil(e.rep / 2);
        var d = "M" + x0 + "," + y0 + " Q" + cx + "," + cy + " " + x1 + "," + y1;
        var path = s("path", { d: d, fill: "none", stroke: "#555", "stroke-width": "1.4",
                               "marker-end": "url(#" + id + "-arrow)" }, gEdges);
        // the midpoint of the curve, for the label of the contribution it carries
        view.edges.push({ path: path, mx: (x0 + 2 * cx + x1) / 4,
                          my: (y0 + 2 * cy + y1) / 4 });
      });
      ex.nodes.forEach(function (n) {
        var g = s("g", { "data-node": n.name }, gNodes);
        var rect = s("rect", { x: n.x - bw / 2, y: n.y - bh / 2, width: bw, height: bh,
                               rx: 6, fill: "#fff", stroke: "#555",
                               "stroke-width": "1.2" }, g);
        var head = n.name + (n.op ? "  " + n.op : "");
        s("text", { x: n.x, y: n.y - 11, "text-anchor": "middle", "font-size": "14",
                    "font-weight": "bold", "font-family": "sans-serif", fill: "#1a1a1a" },
          g, head);
        var val = s("text", { x: n.x - bw / 2 + 8, y: n.y + 6, "font-size": "14",
                              "font-family": "sans-serif", fill: "#1a1a1a",
                              id: id + "-" + n.name + "-value" }, g);
        var adj = s("text", { x: n.x - bw / 2 + 8, y: n.y + 23, "font-size": "14",
                              "font-family": "sans-serif", fill: "#c0392b",
                              id: id + "-" + n.name + "-adjoint" }, g);
        view.nodes.push({ g: g, rect: rect, val: val, adj: adj });
      });
      view.gLabels = gLabels;
    }

    function state() {
      // values known, adjoints as they stand, after k steps
      var F = ex.forward.length, known = {}, adj = {}, late = {};
      ex.nodes.forEach(function (n, i) { if (!n.formula) known[i] = true; });
      for (var j = 0; j < Math.min(k, F); j++) known[ex.forward[j]] = true;
      for (var b = 0; b < k - F; b++) {
        var st = ex.backward[b];
        if (b === 0) adj[st.node] = st.adjoint;
        st.pushes.forEach(function (p) {
          adj[p.to] = p.total;
          if (p.late) late[p.to] = true;
        });
      }
      return { known: known, adj: adj, late: late };
    }

    function render() {
      var F = ex.forward.length, B = ex.backward.length, N = F + B;
      var st = state();
      var cur = -1, hot = {}, targets = {}, phase = "start", step = null;
      if (k >= 1 && k <= F) {
        phase = "forward";
        cur = ex.forward[k - 1];
        ex.edges.forEach(function (e, j) { if (e.to === cur) hot[j] = "fwd"; });
      } else if (k > F) {
        phase = "backward";
        step = ex.backward[k - F - 1];
        cur = step.node;
        step.pushes.forEach(function (p) { hot[p.edge] = "bwd"; targets[p.to] = true; });
      }
      view.gLabels.textContent = "";
      ex.edges.forEach(function (e, j) {
        var v = view.edges[j], kind = hot[j];
        v.path.setAttribute("stroke", kind === "fwd" ? "#1f5fa8" :
                            kind === "bwd" ? "#c0392b" : "#555");
        v.path.setAttribute("stroke-width", kind ? "3" : "1.4");
        v.path.setAttribute("marker-end", "url(#" + id + "-" +
                            (kind === "fwd" ? "arrow-fwd" : kind === "bwd" ? "arrow-bwd" :
                             "arrow") + ")");
      });
      if (step) {
        step.pushes.forEach(function (p) {
          var v = view.edges[p.edge];
          var text = p.term.charAt(0) === "-" ? p.term : "+" + p.term;
          var w = 8.2 * text.length + 10;
          s("rect", { x: v.mx - w / 2, y: v.my - 11, width: w, height: 21, rx: 4,
                      fill: "#fff", stroke: "#c0392b", "stroke-width": "1" }, view.gLabels);
          s("text", { x: v.mx, y: v.my + 5, "text-anchor": "middle", "font-size": "14",
                      "font-family": "sans-serif", fill: "#c0392b" }, view.gLabels, text);
        });
      }
      ex.nodes.forEach(function (n, i) {
        var v = view.nodes[i];
        var fill = "#fff", stroke = "#555", width = "1.2";
        if (i === cur) {
          fill = phase === "forward" ? "#dbe8f6" : "#fde8e4";
          stroke = phase === "forward" ? "#1f5fa8" : "#c0392b";
          width = "3";
        } else if (targets[i]) {
          fill = "#fff3d6";
        } else if (!st.known[i]) {
          fill = "#f2f2f2";
        }
        v.rect.setAttribute("fill", fill);
        v.rect.setAttribute("stroke", st.late[i] ? "#c0392b" : stroke);
        v.rect.setAttribute("stroke-dasharray", st.late[i] ? "5,3" : "none");
        v.rect.setAttribute("stroke-width", st.late[i] ? "2.5" : width);
        v.val.textContent = "val " + (st.known[i] ? n.value : "?");
        v.adj.textContent = "adj " + (i in st.adj ? st.adj[i] : "\u2013");
        v.g.setAttribute("data-value", st.known[i] ? n.value : "");
        v.g.setAttribute("data-adjoint", i in st.adj ? st.adj[i] : "");
      });

      counter.textContent = "step " + k + " of " + N;
      root.setAttribute("data-step", String(k));
      root.setAttribute("data-phase", phase);
      buttons.reset.disabled = buttons.back.disabled = k === 0;
      buttons.step.disabled = buttons.end.disabled = k === N;
      pushes.textContent = "";
      result.textContent = "";
      current.hidden = cur < 0;
      current.setAttribute("data-node", cur < 0 ? "" : ex.nodes[cur].name);
      if (cur >= 0) {
        var n = ex.nodes[cur];
        curName.textContent = n.name;
        curValue.textContent = n.value;
        curAdjoint.textContent = phase === "backward" ? step.adjoint : "\u2013";
      }
      if (phase === "start") {
        status.textContent = "The inputs " + ex.leaves.join(", ") + " are set. " +
          "Step \u25B6 computes the first operation of the forward pass (" + F +
          " steps); the backward pass follows (" + B + " steps).";
      } else if (phase === "forward") {
        var m = ex.nodes[cur];
        status.textContent = "Forward " + k + "/" + F + ": " + m.name + " = " +
          m.formula + " = " + m.numbers + " = " + m.value + ".";
      } else {
        var b = k - F, m2 = ex.nodes[cur];
        var t = "Backward " + b + "/" + B + ": " + m2.name + " passes its adjoint " +
          step.adjoint + " on to its inputs" +
          (b === 1 ? " (the starting adjoint \u2202f/\u2202f = 1)." : ".");
        status.textContent = t;
        if (step.incomplete.length) {
          h("span", { class: "bpx-late" }, status, " Its adjoint is not complete yet: " +
            step.incomplete.join(", ") + " will still send it a contribution.");
        }
        step.pushes.forEach(function (p) {
          var to = ex.nodes[p.to].name;
          var li = h("li", {}, pushes, to + " receives \u2202" + m2.name + "/\u2202" + to +
            " \u00D7 " + step.adjoint + " = " + p.partial + " \u00D7 " + step.adjoint +
            " = " + p.term + "; its adjoint is now " + p.total + ".");
          if (p.late) {
            h("span", { class: "bpx-late" }, li, " Too late: " + to +
              " has already passed its adjoint on.");
          }
        });
      }
      if (k === N) {
        var wrong = 0;
        var table = h("table", {}, result);
        var hr = h("tr", {}, table);
        ["input", "adjoint, this sweep", "bpkit backward()"].forEach(function (c) {
          h("th", { scope: "col" }, hr, c);
        });
        ex.leaves.forEach(function (name) {
          var tr = h("tr", { "data-leaf": name }, table);
          h("th", { scope: "row" }, tr, name);
          var ok = ex.final[name] === ex.right[name];
          if (!ok) wrong++;
          h("td", ok ? {} : { class: "bpx-late" }, tr, ex.final[name] + (ok ? "" : " \u2717"));
          h("td", {}, tr, ex.right[name]);
        });
        h("p", { id: id + "-verdict" }, result, wrong ?
          "Wrong gradient: " + wrong + " of " + ex.leaves.length +
          " input adjoints differ from bpkit's backward()." :
          "The gradient equals bpkit's backward() for every input.");
      }
    }

    function show(i) {
      ex = data.examples[i];
      k = 0;
      note.textContent = ex.note;
      draw();
      render();
    }

    buttons.reset.addEventListener("click", function () { k = 0; render(); });
    buttons.back.addEventListener("click", function () { if (k > 0) { k--; render(); } });
    buttons.step.addEventListener("click", function () {
      if (k < total()) { k++; render(); }
    });
    buttons.end.addEventListener("click", function () { k = total(); render(); });
    select.addEventListener("change", function () { show(Number(select.value)); });
    show(0);
  };
})();
