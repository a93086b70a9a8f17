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
import shutil
import subprocess
import sys
import threading
from html import unescape
from pathlib import Path
from urllib.parse import urlparse

import pytest
from bs4 import BeautifulSoup, Tag
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


def jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    found = str(exe) if exe.exists() else shutil.which("jupyter-book")
    if found is None:
        pytest.fail("jupyter-book is not installed: pip install -e '.[test]'")
    return found


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
