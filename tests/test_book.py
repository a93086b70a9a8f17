"""The built book: a warning-free build, one work per citation label, and every page offline.

The book is built once per test session from the notebooks' committed outputs (the same
build the README's book command runs), into a temporary folder. The browser checks run
Debian's Chromium through playwright, against the site served on 127.0.0.1; any request
to another host is blocked and recorded, so a page that would need the internet fails.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import posixpath
import re
import subprocess
import threading
from html import unescape
from pathlib import Path
from urllib.parse import urlparse

import pytest
from bs4 import BeautifulSoup, Tag
from commands import jupyter_book
from graphs import eq_5_1
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("BPKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "_build" / "screenshots" / "chain_rule.png"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("book")
    cmd = [jupyter_book(), "build", str(ROOT), "-W", "-n", "--keep-going", "--all",
           "--path-output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return proc, out / "_build" / "html"


def test_book_builds_without_warnings(build):
    proc, html = build
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0 and not warnings, "\n".join(warnings[:40]) or log[-4000:]
    assert (html / "index.html").exists()


def test_html_names_no_other_host_for_assets(build):
    """No <script src> or <link href> in any page points off the site."""
    _, html = build
    offenders = []
    for page in html.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for url in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text):
            offenders.append(f"{page.relative_to(html)}: {url}")
    assert not offenders, "\n".join(offenders[:20])


YEAR = re.compile(r"(\d{4}|n\.d\.)[a-z]?")


def citation_labels(html: Path) -> dict[str, dict[str, set[str]]]:
    """In-text citation label ("Rumelhart et al., 1986a") -> bibliography target -> pages.

    A parenthetical citation links "Author, year"; a textual one writes "Author [year]" with
    only the year linked, so its label is the text before the bracket plus the linked year.
    """
    labels: dict[str, dict[str, set[str]]] = {}
    for page in pages(html):
        soup = BeautifulSoup((html / page).read_text(encoding="utf-8"), "html.parser")
        for span in soup.select("span.bibtex-citation"):
            before = ""
            for child in span.children:
                if isinstance(child, Tag) and child.name == "a":
                    text = " ".join(child.get_text().split())
                    if YEAR.fullmatch(text):
                        author = " ".join(before.replace("[", " ").split()).strip(" ,;")
                        text = f"{author}, {text}"
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(page),
                                                               child["href"]))
                    labels.setdefault(text, {}).setdefault(target, set()).add(page)
                    before = ""
                else:
                    before += child.get_text() if isinstance(child, Tag) else str(child)
    return labels


def test_citation_labels_name_one_work_each(build):
    """Two works never share an in-text label, and the bibliography lists each work under
    the label it is cited by (lettered year included)."""
    _, html = build
    labels = citation_labels(html)
    assert any(label.startswith("Rumelhart et al., 1986") for label in labels), sorted(labels)
    shared = {label: targets for label, targets in labels.items() if len(targets) > 1}
    assert not shared, f"one label, several works: {shared}"
    for label, targets in labels.items():
        (target,) = targets
        page, _, anchor = target.partition("#")
        soup = BeautifulSoup((html / page).read_text(encoding="utf-8"), "html.parser")
        node = soup.find(id=anchor)
        entry = " ".join(node.get_text().split())
        year = label.rsplit(", ", 1)[-1]
        assert re.search(rf"\b{re.escape(year)}\b", entry), f"{label}: {entry}"
        # the entry is labelled with the words it is cited by
        shown = " ".join(node.select_one("span.label").get_text().split()).strip("[]")
        assert shown == label, f"cited as {label!r}, listed as {shown!r}"


@pytest.fixture(scope="module")
def site(build):
    """Serve the built HTML on 127.0.0.1 (a free port) for the browser tests."""
    proc, html = build
    if proc.returncode != 0:
        pytest.fail("the book did not build; see test_book_builds_without_warnings")
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", html
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture(scope="module")
def browser():
    # A missing browser is a missing prerequisite (README), not a reason to skip the check.
    assert Path(CHROMIUM).exists(), (
        f"Chromium not found at {CHROMIUM}: install it (Debian/Ubuntu: apt-get install "
        "chromium) or set BPKIT_CHROMIUM to a Chromium binary"
    )
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def pages(html: Path) -> list[str]:
    """Every content page of the site (Sphinx's generated index pages included)."""
    return sorted(str(p.relative_to(html)) for p in html.glob("**/*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts)


class PageVisit:
    """Open one page, blocking and recording requests that leave 127.0.0.1."""

    def __init__(self, browser, base: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.foreign: list[str] = []
        self.failed: list[str] = []
        self.console_errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.on("response",
                     lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.url}"))
        self.host = urlparse(base).netloc

    def _route(self, route):
        if urlparse(route.request.url).netloc == self.host:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def close(self):
        self.context.close()


REFRESH = re.compile(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', re.IGNORECASE)


def redirect_target(path: Path) -> str | None:
    """Where a page that only redirects (Jupyter Book's root index.html) sends the reader."""
    found = REFRESH.search(path.read_text(encoding="utf-8"))
    return found.group(1) if found else None


def test_every_page_renders_offline(site, browser):
    base, html = site
    problems = []
    for name in pages(html):
        visit = PageVisit(browser, base)
        page = visit.page
        target = redirect_target(html / name)
        if target is not None:
            # The page navigates away on its own; checking it mid-navigation races the
            # browser. Check that it lands on a page that exists (that page is checked too).
            landing = (html / name).parent / target
            if not landing.exists():
                problems.append(f"{name}: redirects to a missing page {target}")
            else:
                page.goto(f"{base}/{name}", wait_until="commit")
                page.wait_for_url(f"**/{target}", timeout=20_000)
                page.wait_for_load_state("load")
            visit.close()
            continue
        page.goto(f"{base}/{name}", wait_until="load")
        n_math = page.locator(".math").count()
        if n_math:
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
            page.evaluate("MathJax.startup.promise")
            n_rendered = page.locator("mjx-container").count()
            if n_rendered < n_math:
                problems.append(f"{name}: {n_rendered} of {n_math} equations rendered by MathJax")
            if page.locator("mjx-merror").count():
                problems.append(f"{name}: MathJax reports a TeX error")
        text = page.locator("article").first.inner_text() if page.locator("article").count() else ""
        if "$$" in text:
            problems.append(f"{name}: raw $$ left in the text")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))"
        )
        problems += [f"{name}: image not loaded: {src}" for src in broken]
        problems += [f"{name}: request to another host: {url}" for url in visit.foreign]
        problems += [f"{name}: HTTP {f}" for f in visit.failed]
        problems += [f"{name}: console error: {e}" for e in visit.console_errors]
        if name == "book/03_chain_rule.html":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=False)
        visit.close()
    assert not problems, "\n".join(problems)
    assert SCREENSHOT.exists()


def test_search_finds_delta(site, browser):
    base, _ = site
    visit = PageVisit(browser, base)
    visit.page.goto(f"{base}/search.html?q=delta", wait_until="load")
    results = visit.page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=20_000)
    assert results.count() >= 3, "search for 'delta' found fewer than 3 pages"
    assert not visit.foreign and not visit.console_errors
    visit.close()


# ---- Accessibility ---------------------------------------------------------------------------

# An alt text that is really a file name or a path (what myst-nb falls back to when a cell
# has no `mystnb: image: alt:` metadata) says nothing to a reader who cannot see the figure.
FILE_NAME = re.compile(r"\.(png|jpe?g|gif|svg|webp|pdf)\b|_build|_images|images/|\.\./"
                       r"|^\S*[/\\]\S*$", re.IGNORECASE)
IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
ATTRIBUTE = re.compile(r'\b(alt|src)="([^"]*)"')
DARK_MODE_DIR = ROOT / "_build" / "screenshots"


def chapter_pages(html: Path) -> list[str]:
    return [name for name in pages(html) if name.startswith("book/")]


def test_every_figure_has_alt_text(build):
    """Every image on a chapter page has alt text that describes it in words: not missing,
    not empty, not a file name or path."""
    _, html = build
    problems, n_images = [], 0
    for name in chapter_pages(html):
        text = (html / name).read_text(encoding="utf-8")
        article = text[text.find("<article"):text.rfind("</article>")]
        for tag in IMG.findall(article):
            n_images += 1
            attributes = dict(ATTRIBUTE.findall(tag))
            alt = " ".join(unescape(attributes.get("alt", "")).split())
            src = attributes.get("src", "")
            if not alt:
                problems.append(f"{name}: {src}: no alt text")
            elif FILE_NAME.search(alt) or Path(src).stem in alt:
                problems.append(f"{name}: {src}: alt text is a file name: {alt!r}")
            elif len(alt.split()) < 5:
                problems.append(f"{name}: {src}: alt text too short to describe it: {alt!r}")
    assert n_images >= 30, f"only {n_images} images on the chapter pages"
    assert not problems, "\n".join(problems)


def test_figures_have_an_opaque_light_background(build):
    """Every figure of every chapter is drawn on an opaque light background: in the dark
    theme a transparent figure would show black axes on the dark page."""
    _, html = build
    problems = []
    for name in chapter_pages(html):
        text = (html / name).read_text(encoding="utf-8")
        article = text[text.find("<article"):text.rfind("</article>")]
        for tag in IMG.findall(article):
            src = dict(ATTRIBUTE.findall(tag)).get("src", "")
            image = Image.open((html / name).parent / src).convert("RGBA")
            width, height = image.size
            edge = [image.getpixel((x, y)) for x in range(width) for y in (0, height - 1)]
            edge += [image.getpixel((x, y)) for y in range(height) for x in (0, width - 1)]
            opaque = sum(p[3] == 255 for p in edge) / len(edge)
            light = sum(min(p[:3]) >= 230 for p in edge) / len(edge)
            if opaque < 0.95 or light < 0.95:
                problems.append(f"{name}: {src}: edge {opaque:.0%} opaque, {light:.0%} light")
    assert not problems, "\n".join(problems)


def luminance(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("L")


def percentile(image: Image.Image, q: float) -> int:
    """The grey level below which a fraction q of the image's pixels lie."""
    histogram = image.histogram()
    total, seen = sum(histogram), 0
    for level, count in enumerate(histogram):
        seen += count
        if seen >= q * total:
            return level
    return 255


def test_figures_stay_light_in_dark_mode(site, browser):
    """A chapter in the theme's light and dark modes (screenshots of each in
    _build/screenshots): the dark page really is dark, and every figure on it keeps a light
    background with its dark lines and lettering still dark, as in light mode."""
    base, html = site
    name = "book/02_linear_neuron.html"
    problems = []
    for mode in ("light", "dark"):
        visit = PageVisit(browser, base)
        # pydata-sphinx-theme reads the reader's choice from localStorage before it paints
        visit.context.add_init_script(
            f"localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}');")
        page = visit.page
        page.goto(f"{base}/{name}", wait_until="load")
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("MathJax.startup.promise")
        assert page.evaluate("document.documentElement.dataset.theme") == mode
        figures = page.locator("article img")
        assert figures.count() >= 3, f"{name}: only {figures.count()} figures"
        figures.nth(1).evaluate("img => img.scrollIntoView({block: 'center'})")
        DARK_MODE_DIR.mkdir(parents=True, exist_ok=True)
        shot = page.screenshot(path=str(DARK_MODE_DIR / f"02_linear_neuron_{mode}.png"))
        background = percentile(luminance(shot), 0.5)
        if (mode == "dark") != (background < 80):
            problems.append(f"{mode} mode: the page's median grey is {background}")
        for i in range(figures.count()):
            figure = luminance(figures.nth(i).screenshot())
            light, ink = percentile(figure, 0.5), percentile(figure, 0.01)
            if light < (200 if mode == "dark" else 235) or ink > 120:
                problems.append(f"{mode} mode: figure {i + 1}: background grey {light}, "
                                f"darkest 1% at {ink} (want a light figure with dark ink)")
        problems += [f"{mode} mode: console error: {e}" for e in visit.console_errors]
        visit.close()
    assert not problems, "\n".join(problems)


# ---- Explorables (bpkit/explore.py): figures the reader drives ---------------------------

EXPLORABLE_SHOTS = ROOT / "_build" / "screenshots"


def open_explorable(browser, base: str, page_name: str, element_id: str):
    visit = PageVisit(browser, base)
    # the column as at 1280 px, tall enough for a whole figure in one screenshot
    visit.page.set_viewport_size({"width": 1280, "height": 1400})
    visit.page.goto(f"{base}/{page_name}", wait_until="load")
    figure = visit.page.locator(f"#{element_id}")
    visit.page.wait_for_selector(f"#{element_id}-root[data-ready]", timeout=20_000)
    figure.scroll_into_view_if_needed()
    return visit, figure


def smallest_text_px(figure) -> float:
    """The smallest font size on screen in a figure: SVG text scaled by its drawing, HTML
    text as laid out."""
    return figure.evaluate(
        """fig => {
          let least = Infinity;
          for (const t of fig.querySelectorAll('svg text')) {
            if (!t.textContent.trim()) continue;
            const m = t.getScreenCTM();
            const px = parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
            least = Math.min(least, px);
          }
          for (const e of fig.querySelectorAll('p, li, td, th, button, label, select, output,'
                                               + ' figcaption')) {
            if (e.offsetParent === null || !e.textContent.trim()) continue;
            least = Math.min(least, parseFloat(getComputedStyle(e).fontSize));
          }
          return least;
        }"""
    )


def test_backprop_explorable_shows_bpkits_numbers(site, browser):
    """Chapter 5's step-by-step figure: after k clicks on Step, the node it names and the
    value and adjoint it shows are bpkit's (forward pass in topological order, then the
    backward pass in reverse); in the breadth-first example the gradients of w and x1 come
    out wrong, as a breadth-first sweep over bpkit's partials gives them; nothing is
    fetched from another host; screenshots at the start and after a few steps."""
    from bpkit.engine import topological_order

    base, _ = site
    root = eq_5_1()
    root.backward()
    order = topological_order(root)
    forward = [v for v in order if v.inputs]
    backward = forward[::-1]
    visit, figure = open_explorable(browser, base, "book/05_reverse_mode.html",
                                    "bpkit-backprop-5")
    page, fid = visit.page, "bpkit-backprop-5"
    EXPLORABLE_SHOTS.mkdir(parents=True, exist_ok=True)
    figure.screenshot(path=str(EXPLORABLE_SHOTS / "explore_backprop_start.png"))
    assert smallest_text_px(figure) >= 9
    step = figure.locator("button[data-action=step]")
    current = page.locator(f"#{fid}-current")
    problems = []
    for k in range(1, len(forward) + len(backward) + 1):
        step.click()
        shown = (current.get_attribute("data-node"),
                 current.locator("[data-field=value]").inner_text(),
                 current.locator("[data-field=adjoint]").inner_text())
        if k <= len(forward):
            v = forward[k - 1]
            want = (v.label, f"{v.data:.4g}", "\u2013")
        else:
            v = backward[k - len(forward) - 1]
            want = (v.label, f"{v.data:.4g}", f"{v.grad:.4g}")
        if shown != want:
            problems.append(f"step {k}: page shows {shown}, bpkit {want}")
        if k == len(forward) + 3:
            figure.screenshot(path=str(EXPLORABLE_SHOTS / "explore_backprop_steps.png"))
    for leaf in (v for v in order if not v.inputs):
        row = page.locator(f"#{fid}-result tr[data-leaf={leaf.label}] td").first
        if row.inner_text() != f"{leaf.grad:.4g}":
            problems.append(f"final {leaf.label}: {row.inner_text()} != {leaf.grad:.4g}")
    assert "equals bpkit's backward()" in page.locator(f"#{fid}-verdict").inner_text()
    assert step.is_disabled()

    # the breadth-first order, swept by hand over bpkit's partials
    page.select_option(f"#{fid}-example", "1")
    levels, seen, frontier = [], {id(root)}, [root]  # root first, then by distance
    while frontier:
        levels.extend(frontier)
        nxt = []
        for node in frontier:
            for x in node.inputs:
                if id(x) not in seen:
                    seen.add(id(x))
                    nxt.append(x)
        frontier = nxt
    adjoint = {id(v): 0.0 for v in order}
    adjoint[id(root)] = 1.0
    for _ in range(len(forward)):
        step.click()
    for k, node in enumerate(n for n in levels if n.inputs):
        step.click()
        shown = (current.get_attribute("data-node"),
                 current.locator("[data-field=adjoint]").inner_text())
        want = (node.label, f"{adjoint[id(node)]:.4g}")
        if shown != want:
            problems.append(f"breadth-first step {k + 1}: page {shown}, by hand {want}")
        for x, partial in zip(node.inputs, node.partials, strict=True):
            adjoint[id(x)] += partial * adjoint[id(node)]
    assert step.is_disabled()
    wrong = page.locator(f"#{fid}-result td.bpx-late").all_inner_texts()
    assert sorted(wrong) == sorted(f"{adjoint[id(v)]:.4g} \u2717" for v in order
                                   if v.label in ("w", "x1")), wrong
    assert "Wrong gradient: 2 of 3" in page.locator(f"#{fid}-verdict").inner_text()
    problems += [f"request to another host: {url}" for url in visit.foreign]
    problems += [f"console error: {e}" for e in visit.console_errors]
    visit.close()
    assert not problems, "\n".join(problems)


def test_descent_explorable_slider_redraws_and_diverges(site, browser):
    """Chapter 2's gradient-descent figure: its path is the iteration
    w <- w - eta H (w - w*) (checked against NumPy), moving the learning-rate slider or
    the start redraws it, and past eta_max = 2/lambda_max (from numpy.linalg.eigvalsh of
    the Hessian) the figure says the path diverges; screenshots before and after."""
    import numpy as np

    base, _ = site
    H, w_star = np.array([[2.0, 1.0], [1.0, 1.0]]), np.array([1.0, -1.0])
    eta_max = 2 / np.linalg.eigvalsh(H).max()
    visit, figure = open_explorable(browser, base, "book/02_linear_neuron.html",
                                    "bpkit-descent-2")
    page, fid = visit.page, "bpkit-descent-2"
    EXPLORABLE_SHOTS.mkdir(parents=True, exist_ok=True)
    figure.screenshot(path=str(EXPLORABLE_SHOTS / "explore_descent_start.png"))
    assert smallest_text_px(figure) >= 9
    data = page.evaluate(f"JSON.parse(document.getElementById('{fid}-data').textContent)")
    assert abs(data["eta_max"] - eta_max) < 1e-9 * eta_max
    path = page.locator(f"#{fid}-path")
    verdict = page.locator(f"#{fid}-verdict")

    def shown():
        last = [float(v) for v in path.get_attribute("data-last").split(",")]
        return (path.get_attribute("points"), int(path.get_attribute("data-points")),
                np.array(last), verdict.inner_text())

    def descent(start, eta, steps):
        w = np.array(start, dtype=float)
        for _ in range(steps):
            w = w - eta * H @ (w - w_star)
        return w

    def set_eta(value):
        page.eval_on_selector(f"#{fid}-eta", "(e, v) => { e.value = v; "
                              "e.dispatchEvent(new Event('input', {bubbles: true})); }",
                              str(value))

    points_0, n_0, last_0, text_0 = shown()
    assert n_0 == data["steps"] + 1
    np.testing.assert_allclose(last_0, descent(data["start"], data["eta"], data["steps"]),
                               rtol=1e-12, atol=1e-12)
    assert text_0.startswith("converges")
    set_eta(0.5)
    points_1, _, last_1, text_1 = shown()
    assert points_1 != points_0 and text_1.startswith("converges")
    np.testing.assert_allclose(last_1, descent(data["start"], 0.5, data["steps"]),
                               rtol=1e-12, atol=1e-12)
    set_eta(0.8)  # past 2/lambda_max = 0.7639
    assert 0.8 > eta_max
    points_2, _, last_2, text_2 = shown()
    assert points_2 != points_1
    assert text_2.startswith("diverges: \u03b7 > 2/\u03bb_max"), text_2
    assert path.get_attribute("data-diverges") == "true"
    assert int(path.get_attribute("data-leaves")) > 0  # the path leaves the plot
    np.testing.assert_allclose(last_2, descent(data["start"], 0.8, data["steps"]),
                               rtol=1e-12)
    figure.screenshot(path=str(EXPLORABLE_SHOTS / "explore_descent_diverges.png"))
    # the start moves with the keyboard and by dragging, and the path follows it
    set_eta(0.3)
    handle = page.locator(f"#{fid}-start")
    handle.focus()
    page.keyboard.press("ArrowUp")
    points_3, _, last_3, _ = shown()
    moved = np.array(data["start"]) + [0.0, 0.1]
    np.testing.assert_allclose(last_3, descent(moved, 0.3, data["steps"]), rtol=1e-12,
                               atol=1e-12)
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y - 40, steps=4)
    page.mouse.up()
    points_4, _, _, _ = shown()
    before, after = (np.array(p.split()[0].split(","), dtype=float)
                     for p in (points_3, points_4))
    assert np.hypot(*(after - before)) > 30  # the path starts where the start was dropped
    assert handle.get_attribute("aria-label").startswith("start point w1 = ")
    problems = [f"request to another host: {url}" for url in visit.foreign]
    problems += [f"console error: {e}" for e in visit.console_errors]
    visit.close()
    assert not problems, "\n".join(problems)


# ---- Legible at the page's width -----------------------------------------------------------

LINE_LIMIT = 88  # characters: a code or output line longer than this does not fit the column
MIN_SCREEN_PX = 9.0  # the smallest text of a figure, in CSS pixels at a 1280px viewport
FONT_KEY = "figure_min_font_pt"  # cell metadata "bpkit": {FONT_KEY: points}
TOC_ENTRY = re.compile(r"^\s*-\s*file:\s*(book/\d\d_\w+)\s*$", re.MULTILINE)


def chapter_names() -> list[str]:
    """The numbered chapters of the table of contents that exist as notebooks."""
    names = TOC_ENTRY.findall((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [name for name in names if (ROOT / f"{name}.ipynb").exists()]


def _notebook(name: str) -> dict:
    import json

    return json.loads((ROOT / f"{name}.ipynb").read_text(encoding="utf-8"))


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def figure_declarations(name: str) -> dict[str, tuple[float | None, float, int]]:
    """Image file name as the built page links it (the SHA-256 of the PNG, as myst-nb
    names it) -> (declared smallest font size in points or None, dpi, code cell number)."""
    import base64
    import hashlib

    found = {}
    code_cells = [c for c in _notebook(name)["cells"] if c["cell_type"] == "code"]
    for number, cell in enumerate(code_cells, 1):
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png is None:
                continue
            data = base64.b64decode(_text(png))
            dpi = Image.open(io.BytesIO(data)).info.get("dpi", (72.0, 72.0))[0]
            declared = cell.get("metadata", {}).get("bpkit", {}).get(FONT_KEY)
            found[hashlib.sha256(data).hexdigest() + ".png"] = (declared, float(dpi), number)
    return found


@pytest.mark.parametrize("name", chapter_names())
def test_notebook_lines_fit_the_column(name):
    """Every line of code and every line of printed output (streams and plain-text results
    that the page shows as text) is at most LINE_LIMIT characters: what the page's 12px
    monospace fits in the article column (book/_assets/bpkit.css)."""
    long_lines = []
    code_cells = [c for c in _notebook(name)["cells"] if c["cell_type"] == "code"]
    for number, cell in enumerate(code_cells, 1):
        texts = [("code", _text(cell["source"]))]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if output["output_type"] == "stream" and output.get("name") == "stdout":
                texts.append(("output", _text(output["text"])))
            elif "text/plain" in data and not {"text/html", "text/latex", "image/png"} & set(data):
                texts.append(("output", _text(data["text/plain"])))
        for kind, text in texts:
            long_lines += [f"{name} code cell {number}: {kind} line of {len(line)} chars: "
                           f"{line[:70]}" for line in text.splitlines() if len(line) > LINE_LIMIT]
    assert not long_lines, "\n".join(long_lines)


NAMED_SIZES = {"xx-small": 0.579, "x-small": 0.694, "small": 0.833}
LITERAL_SIZE = re.compile(r"\b(?:fontsize|labelsize|titlesize)\b[\"']?\s*[=:]\s*([\d.]+)\b"
                          r"|\.set_fontsize\(\s*([\d.]+)|[\"']size[\"']\s*:\s*([\d.]+)")
NAMED_SIZE = re.compile(r"\b(?:fontsize|labelsize|titlesize)\b[\"']?\s*[=:]\s*[\"']"
                        r"(xx-small|x-small|small)[\"']")
BASE_SIZE = re.compile(r"[\"']font\.size[\"']\s*:\s*([\d.]+)")


@pytest.mark.parametrize("name", chapter_names())
def test_figures_declare_their_smallest_text(name):
    """Every figure's plotting cell declares, in its cell metadata
    ("bpkit": {"figure_min_font_pt": points}), the smallest text size it draws; the browser
    test below turns it into pixels on the page. The declaration may not be larger than
    any font size the cell writes literally (fontsize=8, "size": 7, labelsize=..., "small",
    and the notebook's rcParams font.size that named sizes scale), so a cell that makes
    its lettering smaller without lowering its declaration fails here. (Sizes that a cell
    only reaches through a helper, a variable or another cell are the declaration's
    responsibility: measure them with matplotlib's Text.get_fontsize over fig.findobj(Text).)"""
    cells = _notebook(name)["cells"]
    source = "\n".join(_text(c["source"]) for c in cells if c["cell_type"] == "code")
    base = min([float(v) for v in BASE_SIZE.findall(source)] or [10.0])
    problems = []
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    for number, cell in enumerate(code_cells, 1):
        if not any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            continue
        declared = cell.get("metadata", {}).get("bpkit", {}).get(FONT_KEY)
        if not isinstance(declared, int | float):
            problems.append(f"{name} code cell {number}: a figure without cell metadata "
                            f'"bpkit": {{"{FONT_KEY}": <smallest font size in points>}}')
            continue
        text = _text(cell["source"])
        sizes = [float(next(g for g in m if g)) for m in LITERAL_SIZE.findall(text)]
        sizes += [NAMED_SIZES[m] * base for m in NAMED_SIZE.findall(text)]
        if sizes and min(sizes) < declared:
            problems.append(f"{name} code cell {number}: declares {declared} pt but draws "
                            f"text at {min(sizes):g} pt")
    assert not problems, "\n".join(problems)


def _open_page(browser, base: str, name: str) -> PageVisit:
    visit = PageVisit(browser, base)
    visit.page.goto(f"{base}/{name}.html", wait_until="load")
    if visit.page.locator(".math").count():
        visit.page.wait_for_function(
            "window.MathJax && MathJax.startup && MathJax.startup.promise")
        visit.page.evaluate("MathJax.startup.promise")
    return visit


@pytest.mark.parametrize("name", chapter_names())
def test_code_and_outputs_fit_their_boxes(site, browser, name):
    """At a 1280px viewport no code block or output block of the chapter scrolls sideways:
    with every folded cell and solution opened, each <pre> in the article has
    scrollWidth <= clientWidth."""
    base, _ = site
    visit = _open_page(browser, base, name)
    blocks = visit.page.evaluate("""() => {
        document.querySelectorAll('details').forEach(d => { d.open = true; });
        document.querySelectorAll('.toggle-hidden').forEach(
            e => e.classList.remove('toggle-hidden'));
        return [...document.querySelectorAll('article pre')].map(p => ({
            scroll: p.scrollWidth, client: p.clientWidth,
            kind: p.closest('.cell_output, .output') ? 'output' : 'code',
            line: p.textContent.split('\\n').reduce((a, l) => l.length > a.length ? l : a, ''),
        }));
    }""")
    visit.close()
    assert blocks, f"{name}: no code blocks found"
    unmeasured = [b for b in blocks if b["client"] == 0]
    overflowing = [f"{name}: {b['kind']} block {i + 1}: content {b['scroll']}px wide in a "
                   f"{b['client']}px box; longest line ({len(b['line'])} chars): {b['line'][:60]}"
                   for i, b in enumerate(blocks) if b["scroll"] > b["client"]]
    assert not unmeasured, f"{name}: {len(unmeasured)} code blocks not laid out"
    assert not overflowing, f"{len(overflowing)} of {len(blocks)} blocks:\n" + "\n".join(
        overflowing)


@pytest.mark.parametrize("name", chapter_names())
def test_figures_legible_as_placed(site, browser, name):
    """Every figure's smallest text is at least MIN_SCREEN_PX pixels on the page at a
    1280px viewport, and clicking the figure opens it at full size.

    A PNG does not say how big its lettering is, so each plotting cell declares its
    smallest font size f in points (test_figures_declare_their_smallest_text). The image
    is drawn at D dots per inch (read from the PNG), so that text is f*D/72 pixels in the
    image; the page shows the image at its rendered width w out of its natural width W,
    so on screen the text is f*D/72*(w/W) pixels. A figure made wider (more inches, so
    shrunk more to fit the column), drawn at a higher dpi without larger lettering, or
    given smaller lettering fails here; so does a figure with no declaration."""
    base, _ = site
    declared = figure_declarations(name)
    visit = _open_page(browser, base, name)
    images = visit.page.evaluate("""() => [...document.querySelectorAll('article img')].map(i => ({
        file: i.getAttribute('src').split('/').pop(), natural: i.naturalWidth,
        shown: i.getBoundingClientRect().width,
        link: i.closest('a') ? i.closest('a').href.split('/').pop() : null,
    }))""")
    visit.close()
    problems = []
    for image in images:
        if image["link"] != image["file"]:
            problems.append(f"{name}: {image['file']}: not a link to its full-size image")
        if image["file"] not in declared:
            problems.append(f"{name}: {image['file']}: not a figure of {name}.ipynb")
            continue
        points, dpi, cell = declared[image["file"]]
        if points is None:
            problems.append(f"{name} code cell {cell}: no declared smallest font size")
            continue
        scale = image["shown"] / image["natural"]
        pixels = points * dpi / 72 * scale
        if pixels < MIN_SCREEN_PX:
            problems.append(
                f"{name} code cell {cell}: {points:g} pt text at {dpi:.0f} dpi shown at "
                f"{image['shown']:.0f} of {image['natural']} px (scale {scale:.2f}) is "
                f"{pixels:.1f} px on screen; needs {MIN_SCREEN_PX:g} px: larger lettering, a "
                f"smaller figsize or a split figure")
    assert not problems, "\n".join(problems)


def test_one_search_box_and_the_contents_beside_the_text(site, browser):
    """At 1280px the page shows one search box (the sidebar's), and no chapter opens with
    its table of contents folded away by a margin note in the first screen."""
    base, _ = site
    problems = []
    for name in chapter_names():
        visit = _open_page(browser, base, name)
        visit.page.wait_for_timeout(300)  # the theme folds the contents from an observer
        state = visit.page.evaluate("""() => ({
            search: [...document.querySelectorAll('.search-button-field')].filter(
                e => e.getBoundingClientRect().width > 0).length,
            folded: document.querySelector('div.bd-sidebar-secondary').classList.contains('hide'),
        })""")
        visit.close()
        if state["search"] != 1:
            problems.append(f"{name}: {state['search']} search boxes")
        if state["folded"]:
            problems.append(f"{name}: the contents are folded into a dropdown at the top of "
                            "the page (a margin note in the first screen)")
    assert not problems, "\n".join(problems)
