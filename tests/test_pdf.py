"""The PDF edition: the whole book through Jupyter Book's LaTeX builder (xelatex).

The PDF is built once per module into a temporary folder from the notebooks' committed
outputs, with the README's PDF command. Its text is read back with poppler's pdftotext and
pages are rendered with pdftoppm, so the checks see what a reader sees: every part and
chapter, every labelled equation numbered and drawn, every figure embedded and not blank,
the exercises with their solutions and the bibliography. TeX Live and poppler are
prerequisites (README); without them the tests fail and say what to install.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
import yaml
from commands import jupyter_book
from PIL import Image, ImageStat

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {
    "latexmk": "latexmk",
    "xelatex": "texlive-xetex",
    "pdftotext": "poppler-utils",
    "pdftoppm": "poppler-utils",
    "pdftohtml": "poppler-utils",
    "pdfimages": "poppler-utils",
}
APT = (
    "apt-get install --no-install-recommends latexmk texlive-latex-recommended texlive-latex-extra "
    "texlive-fonts-recommended texlive-xetex fonts-freefont-otf poppler-utils"
)
NUMBER_WORDS = ("ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN "
                "FOURTEEN FIFTEEN SIXTEEN SEVENTEEN EIGHTEEN NINETEEN TWENTY").split()
ROMAN = "I II III IV V VI VII VIII IX X".split()
# Mathematical Alphanumeric Symbols: the italic letters unicode-math sets math in
MATH_LETTER = re.compile("[\U0001d400-\U0001d7ff]")


def run(*cmd: str | Path) -> str:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          check=True).stdout


def words(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


# ---- what the sources say the book contains ------------------------------------------------

def toc() -> list[tuple[str, bool, list[str]]]:
    """(part caption, numbered, chapter files) for each part of _toc.yml."""
    data = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [(part["caption"], bool(part.get("numbered")), [c["file"] for c in part["chapters"]])
            for part in data["parts"]]


def markdown_of(file: str) -> str:
    paths = [p for p in (ROOT / f"{file}.ipynb", ROOT / f"{file}.md") if p.exists()]
    if not paths:
        pytest.fail(f"_toc.yml lists {file}, which is neither a notebook nor a page")
    path = paths[0]
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def title_of(file: str) -> str:
    heading = re.search(r"^# (.+)$", markdown_of(file), flags=re.M)
    assert heading, f"{file} has no title"
    return heading.group(1).replace("`", "").strip()


def labelled_equations(file: str) -> int:
    return len(re.findall(r"\$\$\s*\(eq-[^)]+\)", markdown_of(file)))


def exercises(file: str) -> int:
    return len(re.findall(r"^(?:`{3,}|:{3,})\{exercise\}", markdown_of(file), flags=re.M))


def captioned_figures(file: str) -> int:
    path = ROOT / f"{file}.ipynb"
    if not path.exists():
        return 0
    nb = json.loads(path.read_text(encoding="utf-8"))
    return sum(1 for c in nb["cells"] if c["cell_type"] == "code"
               and c["metadata"].get("mystnb", {}).get("figure", {}).get("caption")
               and any("image/png" in o.get("data", {}) for o in c.get("outputs", [])))


def numbered_chapters() -> list[str]:
    """Chapter files in the order LaTeX numbers them (1, 2, ...)."""
    return [f for _, numbered, files in toc() if numbered for f in files]


# ---- the built PDF ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Missing TeX or poppler is a missing prerequisite (README), not a reason to skip.
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        pytest.fail(f"the PDF edition needs {', '.join(missing)} (Debian/Ubuntu: {APT})")
    out = tmp_path_factory.mktemp("pdf")
    cmd = [jupyter_book(), "build", str(ROOT), "--builder", "pdflatex", "--all",
           "--path-output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    latex = out / "_build" / "latex"
    book = latex / "book.pdf"
    if proc.returncode != 0 or not book.exists():
        log = latex / "book.log"
        errors = [line for line in log.read_text(errors="replace").splitlines()
                  if line.startswith("!")] if log.exists() else []
        pytest.fail("the PDF did not build:\n" + "\n".join(errors[:20]) + "\n"
                    + (proc.stdout + proc.stderr)[-3000:])
    return book


@pytest.fixture(scope="module")
def pages(pdf: Path) -> list[str]:
    """Each page's text, in pdftotext's reading order."""
    return unicodedata.normalize("NFKC", run("pdftotext", pdf, "-")).split("\f")


@pytest.fixture(scope="module")
def boxes(pdf: Path) -> list[list[tuple[float, float, float, float, str]]]:
    """Each page's words with their boxes (x0, y0, x1, y1, text), in PDF points."""
    html = run("pdftotext", "-bbox", pdf, "-")
    result = []
    for page in html.split("<page ")[1:]:
        result.append([(float(x0), float(y0), float(x1), float(y1), text) for x0, y0, x1, y1, text
                       in re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" '
                                     r'yMax="([\d.]+)">([^<]*)</word>', page)])
    return result


def render(pdf: Path, page: int) -> Image.Image:
    """Page ``page`` (1-based) as a greyscale image, one pixel per point."""
    png = subprocess.run(["pdftoppm", "-r", "72", "-gray", "-png", "-f", str(page), "-l",
                          str(page), str(pdf)], capture_output=True, check=True).stdout
    return Image.open(io.BytesIO(png)).convert("L")


def ink(image: Image.Image) -> float:
    """Fraction of pixels clearly darker than the white page."""
    histogram = image.histogram()
    return sum(histogram[:160]) / max(1, sum(histogram))


def test_latex_log_has_no_missing_glyph_or_reference(pdf):
    """xelatex drops a character its font lacks with only a log line; an unresolved
    reference prints '??'. Neither may happen anywhere in the book."""
    log = (pdf.parent / "book.log").read_text(errors="replace")
    missing = sorted(set(re.findall(r"Missing character: There is no (\S+)", log)))
    assert not missing, f"characters missing from the fonts: {missing}"
    undefined = re.findall(r"LaTeX Warning: (?:Reference|Citation|Hyper reference) `([^']+)' "
                           r"on page \d+ undefined", log)
    assert not undefined and "There were undefined references" not in log, undefined[:20]
    assert not re.search(r"\?\?", " ".join(run("pdftotext", pdf, "-").split())), (
        "an unresolved reference (??) is printed")


def test_every_part_and_chapter(pages):
    """Every part of _toc.yml opens with its caption, and every chapter with a heading page
    'CHAPTER <number> <TITLE>', in the table of contents' order; the contents list them."""
    opening = [words(p[:400]) for p in pages]
    contents = words(" ".join(p for p in pages[:12] if "." * 5 in p.replace(" ", "")))
    chapter = 0
    last = -1
    for number, (caption, _, files) in enumerate(toc()):
        part = f"Part {ROMAN[number]} {caption}"
        found = [i for i, p in enumerate(opening) if p.startswith(part)]
        assert found and found[0] > last, f"no page opens with {part!r} (after page {last + 1})"
        last = found[0]
        for file in files:
            title = title_of(file)
            heading = f"CHAPTER {NUMBER_WORDS[chapter]} {words(title).upper()}"
            found = [i for i, p in enumerate(opening) if p.startswith(heading)]
            assert found and found[0] > last, (
                f"no page opens with {heading!r} (after page {last + 1})")
            last = found[0]
            assert f"{chapter + 1} {words(title)}" in contents, f"{title!r} not in the contents"
            chapter += 1
    assert any(p.startswith("Bibliography") or "BIBLIOGRAPHY" in p[:40] for p in pages)


def test_every_labelled_equation_is_numbered(pages):
    """Each labelled display equation of chapter N is numbered (N.1), (N.2), ... as in the
    HTML, and no other display is numbered."""
    text = "\n".join(pages)
    numbers = set(re.findall(r"(?m)^\((\d+\.\d+)\)$", text))
    expected = {f"{n}.{k}" for n, file in enumerate(numbered_chapters(), start=1)
                for k in range(1, labelled_equations(file) + 1)}
    assert len(expected) > 50, "the book's sources have fewer labelled equations than expected"
    assert numbers == expected, (f"missing: {sorted(expected - numbers)}; "
                                 f"unexpected: {sorted(numbers - expected)}")


def test_equations_are_typeset(pdf, boxes):
    """The first numbered equation of each chapter that has one is drawn on its line: math
    letters (unicode-math's italic alphabet) left of the number, and ink where they are."""
    checked = 0
    for n, file in enumerate(numbered_chapters(), start=1):
        if not labelled_equations(file):
            continue
        where = [(i, w) for i, page in enumerate(boxes) for w in page if w[4] == f"({n}.1)"
                 and w[0] > 0.75 * 612]  # the number at the right margin, not a reference
        assert where, f"equation ({n}.1) not found at a right margin"
        index, (x0, y0, x1, y1, _) = where[0]
        middle = (y0 + y1) / 2
        line = [w for w in boxes[index] if w[1] - 6 <= middle <= w[3] + 6 and w[2] < x0]
        assert any(MATH_LETTER.search(w[4]) for w in line), (
            f"equation ({n}.1) on page {index + 1}: no typeset math on its line: "
            f"{' '.join(w[4] for w in line)!r}")
        left = min(w[0] for w in line)
        image = render(pdf, index + 1)
        band = image.crop((int(left), int(y0) - 6, int(x0) - 4, int(y1) + 6))
        assert ink(band) > 0.01, f"equation ({n}.1) on page {index + 1} looks blank"
        checked += 1
    assert checked >= 5


def test_every_figure_is_embedded_and_not_blank(pdf, pages, tmp_path):
    """Each captioned figure of chapter N appears as 'Fig. N.k:' under an embedded image; a
    few of them, rendered, are pictures (not blank)."""
    captions = {}
    for i, page in enumerate(pages):
        for label in re.findall(r"(?m)^Fig\. (\d+\.\d+):", page):
            captions[label] = i + 1
    expected = {f"{n}.{k}" for n, file in enumerate(numbered_chapters(), start=1)
                for k in range(1, captioned_figures(file) + 1)}
    assert len(expected) > 20
    assert set(captions) == expected, (f"missing: {sorted(expected - set(captions))}; "
                                       f"unexpected: {sorted(set(captions) - expected)}")
    listing = run("pdfimages", "-list", pdf).splitlines()[2:]
    with_images = {int(line.split()[0]) for line in listing}
    without = sorted(label for label, page in captions.items() if page not in with_images)
    assert not without, f"figures whose page has no image: {without}"

    ordered = sorted(captions, key=lambda s: tuple(map(int, s.split("."))))
    for label in {ordered[0], ordered[len(ordered) // 2], ordered[-1]}:
        page = captions[label]
        out = tmp_path / f"p{page}"
        subprocess.run(["pdftohtml", "-xml", "-zoom", "1", "-q", "-f", str(page), "-l",
                        str(page), str(pdf), str(out)], check=True, capture_output=True)
        xml = out.with_suffix(".xml").read_text(errors="replace")
        placed = [tuple(int(v) for v in m) for m in re.findall(
            r'<image top="(\d+)" left="(\d+)" width="(\d+)" height="(\d+)"', xml)]
        caption = rf'<text top="(\d+)"[^>]*>(?:<[^>]+>)*Fig\. {re.escape(label)}:'
        caption_top = int(re.search(caption, xml).group(1))
        above = [p for p in placed if p[0] < caption_top and p[2] > 100 and p[3] > 60]
        assert above, f"Fig. {label} (page {page}): no image placed above its caption"
        top, left, width, height = max(above, key=lambda p: p[0])
        picture = render(pdf, page).crop((left, top, left + width, top + height))
        stats = ImageStat.Stat(picture)
        assert ink(picture) > 0.01 and stats.stddev[0] > 15, (
            f"Fig. {label} (page {page}) renders blank: ink {ink(picture):.3f}, "
            f"spread {stats.stddev[0]:.1f}")


def test_exercises_with_solutions(pages):
    """Chapter N's exercises are Exercise N.1, N.2, ... as in the HTML (not N.7.1), and
    the solutions printed after them belong to exercises that are there."""
    text = words(" ".join(pages))
    found = set(re.findall(r"(?<!to )Exercise (\d+\.\d+)\b", text))
    expected = {f"{n}.{k}" for n, file in enumerate(numbered_chapters(), start=1)
                for k in range(1, exercises(file) + 1)}
    assert len(expected) > 20
    assert found == expected, (f"missing: {sorted(expected - found)}; "
                               f"unexpected: {sorted(found - expected)}")
    assert not re.search(r"Exercise \d+\.\d+\.\d+", text)
    solutions = set(re.findall(r"Solution to Exercise (\d+\.\d+)\b", text))
    assert solutions and solutions <= found


def test_bibliography_lists_every_entry(pages):
    """The references page prints the whole bibliography (:all:), one labelled entry per
    work in references.bib, with the author-year labels the HTML uses."""
    bib = (ROOT / "references.bib").read_text(encoding="utf-8")
    n_entries = len(re.findall(r"^@\w+\{", bib, flags=re.M))
    start = next(i for i, p in enumerate(pages)
                 if "BIBLIOGRAPHY" in p[:40] or p.startswith("Bibliography"))
    text = "\n".join(pages[start:])
    labels = re.findall(r"^\[([^\]\n]+?, (?:\d{4}|n\.d\.)[a-z]?)\] ", text, flags=re.M)
    assert len(labels) == len(set(labels)) == n_entries, (len(labels), n_entries)
    assert any(label.startswith("Rumelhart et al., 1986") for label in labels)
