/* bpkit explorable "Gradient descent on the error surface" (bpkit/explore.py writes its
   data: the quadratic's Hessian H, minimiser w*, eigenvalues and eta_max = 2/lambda_max).
   Plain JavaScript, no dependencies; MIT, part of bpkit. */
(function () {
  "use strict";
  var X = (window.bpkitExplore = window.bpkitExplore || {});
  if (X.descent) return;
  var NS = "http://www.w3.org/2000/svg";
  var CSS =
    ".bpkit-explorable .bpd-controls{display:flex;flex-wrap:wrap;gap:.3em 1em;" +
    "align-items:center;margin:.3em 0;font-size:15px}" +
    ".bpkit-explorable .bpd-controls label{display:flex;align-items:center;gap:.4em}" +
    ".bpkit-explorable .bpd-controls input[type=range]{width:14em}" +
    ".bpkit-explorable button{font:inherit;font-size:15px;color:#1a1a1a;" +
    "background:#f4f4f4;border:1px solid #777;border-radius:4px;padding:.2em .6em;" +
    "cursor:pointer}" +
    ".bpkit-explorable button:focus-visible,.bpkit-explorable input:focus-visible," +
    ".bpkit-explorable [tabindex]:focus-visible{outline:3px solid #1f5fa8;" +
    "outline-offset:2px}" +
    ".bpkit-explorable .bpd-plot{display:block;width:100%;height:auto;background:#fff;" +
    "touch-action:none;cursor:crosshair}" +
    ".bpkit-explorable .bpd-readout{font-size:15px;line-height:1.45;margin:.3em 0;" +
    "min-height:3em}" +
    ".bpkit-explorable .bpd-verdict{font-size:15px;font-weight:bold;margin:.2em 0}" +
    ".bpkit-explorable .bpd-verdict[data-diverges=true]{color:#b03020}" +
    ".bpkit-explorable .bpd-verdict[data-diverges=false]{color:#1d6b2f}";

  function css() {
    if (document.getElementById("bpkit-explore-css-descent")) return;
    var e = document.createElement("style");
    e.id = "bpkit-explore-css-descent";
    e.textContent = CSS;
    document.head.appendChild(e);
  }
  /* helpers.js: h() makes an HTML element, s() an SVG one */
  function f3(x) {
    return Number(x).toFixed(3).replace("-", "\u2212");
  }
  function g4(x) {
    var a = Math.abs(x);
    var t = a !== 0 && (a < 1e-3 || a >= 1e5) ? x.toExponential(2) : x.toPrecision(4);
    return t.replace("-", "\u2212");
  }

  X.descent = function (id) {
    var root = document.getElementById(id + "-root");
    if (!root || root.getAttribute("data-ready")) return;
    root.setAttribute("data-ready", "1");
    css();
    var D = JSON.parse(document.getElementById(id + "-data").textContent);
    var H = D.H, ws = D.wstar, lam = D.lam, vec = D.vec, box = D.box;
    var start = D.start.slice(), eta = D.eta, steps = D.steps;

    // -- controls ----------------------------------------------------------------------
    var controls = h("div", { class: "bpd-controls" }, root);
    var l1 = h("label", { for: id + "-eta" }, controls, "learning rate \u03B7");
    var r = D.eta_range;
    var slider = h("input", { type: "range", id: id + "-eta", min: String(r[0]),
                              max: String(r[1]), step: String(r[2]), value: String(eta),
                              list: id + "-ticks" }, l1);
    var dl = h("datalist", { id: id + "-ticks" }, controls);
    h("option", { value: String(D.eta_max), label: "2/\u03BB_max" }, dl);
    var etaOut = h("output", { for: id + "-eta", id: id + "-eta-value" }, l1);
    var l2 = h("label", { for: id + "-steps" }, controls, "steps");
    var stepsIn = h("input", { type: "range", id: id + "-steps", min: "1", max: "100",
                               step: "1", value: String(steps) }, l2);
    stepsIn.style.width = "8em";
    var stepsOut = h("output", { for: id + "-steps" }, l2);
    var reset = h("button", { type: "button", "data-action": "reset" }, controls,
                  "Reset");

    // -- the plot ------------------------------------------------------------------------
    var L = 62, T = 14, P = 420, W = L + P + 16, Hh = T + P + 48;
    var sx = P / (box[1] - box[0]), sy = P / (box[3] - box[2]);
    function X0(w1) { return L + (w1 - box[0]) * sx; }
    function Y0(w2) { return T + (box[3] - w2) * sy; }
    function clampPx(v) { return Math.max(-1e5, Math.min(1e5, v)); }
    var svg = s("svg", { class: "bpd-plot", viewBox: "0 0 " + W + " " + Hh,
                         width: W, height: Hh, role: "img",
                         "aria-labelledby": id + "-svgtitle",
                         style: "max-width:" + W + "px" }, root);
    s("title", { id: id + "-svgtitle" }, svg,
      "Contour lines of the error over the weights w1 (across) and w2 (up), the " +
      "minimum marked, and the path of gradient descent from the orange start point.");
    var defs = s("defs", {}, svg);
    var clip = s("clipPath", { id: id + "-clip" }, defs);
    s("rect", { x: L, y: T, width: P, height: P }, clip);
    s("rect", { x: L, y: T, width: P, height: P, fill: "#fff", stroke: "#333" }, svg);
    // ticks
    for (var t = Math.ceil(box[0]); t <= box[1]; t++) {
      s("line", { x1: X0(t), x2: X0(t), y1: T + P, y2: T + P + 5, stroke: "#333" }, svg);
      s("text", { x: X0(t), y: T + P + 20, "text-anchor": "middle", "font-size": "13",
                  "font-family": "sans-serif", fill: "#1a1a1a" }, svg, f3(t).slice(0, -4));
    }
    for (t = Math.ceil(box[2]); t <= box[3]; t++) {
      s("line", { x1: L - 5, x2: L, y1: Y0(t), y2: Y0(t), stroke: "#333" }, svg);
      s("text", { x: L - 9, y: Y0(t) + 4.5, "text-anchor": "end", "font-size": "13",
                  "font-family": "sans-serif", fill: "#1a1a1a" }, svg, f3(t).slice(0, -4));
    }
    s("text", { x: L + P / 2, y: T + P + 42, "text-anchor": "middle", "font-size": "15",
                "font-family": "serif", "font-style": "italic", fill: "#1a1a1a" }, svg,
      "w\u2081");
    s("text", { x: 18, y: T + P / 2, "text-anchor": "middle", "font-size": "15",
                "font-family": "serif", "font-style": "italic", fill: "#1a1a1a" }, svg,
      "w\u2082");
    var inside = s("g", { "clip-path": "url(#" + id + "-clip)" }, svg);
    // contours: E = E* + d^T H d / 2 = c is an ellipse with semi-axes sqrt(2(c-E*)/lambda)
    var angle = Math.atan2(-vec[0][1] * sy, vec[0][0] * sx) * 180 / Math.PI;
    var cx = X0(ws[0]), cy = Y0(ws[1]);
    D.levels.forEach(function (c, i) {
      var a = Math.sqrt(2 * (c - D.Estar) / lam[0]), b = Math.sqrt(2 * (c - D.Estar) / lam[1]);
      var shade = Math.round(90 + 120 * i / Math.max(1, D.levels.length - 1));
      s("ellipse", { cx: cx, cy: cy, rx: a * sx, ry: b * sx,
                     transform: "rotate(" + angle + " " + cx + " " + cy + ")", fill: "none",
                     stroke: "rgb(" + (shade - 60) + "," + shade + "," + (shade + 20) + ")",
                     "stroke-width": "1.2" }, inside);
      // label the contour where it crosses the shallow axis, on a side inside the plot
      [-1, 1].some(function (side) {
        var px = ws[0] + side * a * vec[0][0], py = ws[1] + side * a * vec[0][1];
        var m = 0.15 * (box[1] - box[0]);
        if (px < box[0] + m || px > box[1] - m / 2 || py < box[2] + m / 3 ||
            py > box[3] - m / 3) return false;
        s("text", { x: X0(px), y: Y0(py) + 4, "text-anchor": "middle", "font-size": "12",
                    "font-family": "sans-serif", fill: "#2a4a5a", stroke: "#fff",
                    "stroke-width": "4", "paint-order": "stroke" }, inside, String(c));
        return true;
      });
    });
    s("path", { d: "M" + (cx - 7) + "," + (cy - 7) + " L" + (cx + 7) + "," + (cy + 7) +
                " M" + (cx - 7) + "," + (cy + 7) + " L" + (cx + 7) + "," + (cy - 7),
                stroke: "#000", "stroke-width": "2.5" }, inside);
    var path = s("polyline", { id: id + "-path", fill: "none", stroke: "#1f5fa8",
                               "stroke-width": "2", "stroke-linejoin": "round" }, inside);
    var dots = s("g", { fill: "#1f5fa8" }, inside);
    var banner = s("text", { x: L + 10, y: T + 22, "font-size": "15",
                             "font-family": "sans-serif", "font-weight": "bold",
                             fill: "#b03020", stroke: "#fff", "stroke-width": "4",
                             "paint-order": "stroke" }, svg);
    var handle = s("circle", { r: "9", fill: "#e67e22", stroke: "#000",
                               "stroke-width": "1.5", tabindex: "0", role: "button",
                               id: id + "-start", style: "cursor:grab" }, svg);
    var verdict = h("p", { class: "bpd-verdict", id: id + "-verdict" }, root);
    var readout = h("p", { class: "bpd-readout", id: id + "-readout",
                           "aria-live": "polite" }, root);

    function error(w) {
      var d0 = w[0] - ws[0], d1 = w[1] - ws[1];
      return D.Estar + 0.5 * (d0 * (H[0][0] * d0 + H[0][1] * d1) +
                              d1 * (H[1][0] * d0 + H[1][1] * d1));
    }

    function run() {
      // w <- w - eta H (w - w*), the gradient of the quadratic
      var w = start.slice(), pts = [w.slice()], left = -1;
      var far = 1e3 * (box[1] - box[0]);
      for (var i = 1; i <= steps; i++) {
        var d0 = w[0] - ws[0], d1 = w[1] - ws[1];
        w = [w[0] - eta * (H[0][0] * d0 + H[0][1] * d1),
             w[1] - eta * (H[1][0] * d0 + H[1][1] * d1)];
        pts.push(w.slice());
        if (left < 0 && (w[0] < box[0] || w[0] > box[1] || w[1] < box[2] || w[1] > box[3])) {
          left = i;
        }
        if (Math.abs(w[0] - ws[0]) + Math.abs(w[1] - ws[1]) > far) break;
      }
      return { pts: pts, left: left };
    }

    function render() {
      var res = run(), pts = res.pts, last = pts[pts.length - 1];
      path.setAttribute("points", pts.map(function (p) {
        return clampPx(X0(p[0])).toFixed(2) + "," + clampPx(Y0(p[1])).toFixed(2);
      }).join(" "));
      dots.textContent = "";
      pts.forEach(function (p, i) {
        if (i) s("circle", { cx: clampPx(X0(p[0])), cy: clampPx(Y0(p[1])), r: "3" }, dots);
      });
      handle.setAttribute("cx", X0(start[0]));
      handle.setAttribute("cy", Y0(start[1]));
      handle.setAttribute("aria-label", "start point w1 = " + f3(start[0]) + ", w2 = " +
                          f3(start[1]) + "; drag it, or move it with the arrow keys");
      var diverges = eta > D.eta_max * (1 + 1e-9);
      var atBound = !diverges && eta >= D.eta_max * (1 - 1e-9);
      path.setAttribute("data-points", String(pts.length));
      path.setAttribute("data-last", last[0] + "," + last[1]);
      path.setAttribute("data-diverges", String(diverges));
      path.setAttribute("data-leaves", String(res.left));
      etaOut.textContent = " " + eta.toFixed(3);
      stepsOut.textContent = " " + steps;
      var bound = "2/\u03BB_max = " + D.eta_max.toFixed(4);
      verdict.setAttribute("data-diverges", String(diverges));
      verdict.textContent = diverges ? "diverges: \u03B7 > " + bound :
        atBound ? "on the bound: \u03B7 = " + bound + " (the steep component flips sign" +
                  " and never shrinks)" :
        "converges: \u03B7 < " + bound;
      banner.textContent = diverges ? "diverges: \u03B7 > 2/\u03BB_max" : "";
      var q0 = Math.abs(1 - eta * lam[0]), q1 = Math.abs(1 - eta * lam[1]);
      readout.textContent = "\u03B7 = " + eta.toFixed(3) + ". Each step multiplies the " +
        "distance to the minimum along the shallow axis by |1 \u2212 \u03B7\u03BB_min| = " +
        q0.toFixed(3) + " and along the steep axis by |1 \u2212 \u03B7\u03BB_max| = " +
        q1.toFixed(3) + ". After " + (pts.length - 1) + " steps: E = " + g4(error(last)) +
        (Math.abs(last[0]) < 1e5 ? " at w = (" + f3(last[0]) + ", " + f3(last[1]) + ")" : "") +
        (res.left > 0 ? "; the path leaves the plot at step " + res.left : "") + ".";
    }

    function toWeights(ev) {
      var pt = svg.createSVGPoint();
      pt.x = ev.clientX;
      pt.y = ev.clientY;
      var q = pt.matrixTransform(svg.getScreenCTM().inverse());
      var w1 = box[0] + (q.x - L) / sx, w2 = box[3] - (q.y - T) / sy;
      return [Math.max(box[0], Math.min(box[1], w1)), Math.max(box[2], Math.min(box[3], w2))];
    }
    var dragging = false;
    svg.addEventListener("pointerdown", function (ev) {
      dragging = true;
      svg.setPointerCapture(ev.pointerId);
      start = toWeights(ev);
      render();
      ev.preventDefault();
    });
    svg.addEventListener("pointermove", function (ev) {
      if (!dragging) return;
      start = toWeights(ev);
      render();
    });
    function stop() { dragging = false; }
    svg.addEventListener("pointerup", stop);
    svg.addEventListener("pointercancel", stop);
    handle.addEventListener("keydown", function (ev) {
      var dd = ev.shiftKey ? 0.5 : 0.1, moved = true;
      if (ev.key === "ArrowLeft") start[0] -= dd;
      else if (ev.key === "ArrowRight") start[0] += dd;
      else if (ev.key === "ArrowUp") start[1] += dd;
      else if (ev.key === "ArrowDown") start[1] -= dd;
      else moved = false;
      if (!moved) return;
      start = [Math.max(box[0], Math.min(box[1], start[0])),
               Math.max(box[2], Math.min(box[3], start[1]))];
      ev.preventDefault();
      render();
    });
    slider.addEventListener("input", function () { eta = Number(slider.value); render(); });
    stepsIn.addEventListener("input", function () { steps = Number(stepsIn.value); render(); });
    reset.addEventListener("click", function () {
      start = D.start.slice();
      eta = D.eta;
      steps = D.steps;
      slider.value = String(eta);
      stepsIn.value = String(steps);
      render();
    });
    render();
  };
})();
