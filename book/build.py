#!/usr/bin/env python
"""Build the HTML book from the nbdev notebooks in nbs/, offline.

    python book/build.py            # -> book/_build/html/index.html
    python book/build.py --all      # rebuild every page, not only changed ones
    python book/build.py --no-strict

What it does, in order:
1. makes sure a local MathJax 3 is in book/node_modules (`npm ci` from book/package-lock.json if missing), so
   formulas are typeset with nothing fetched from a CDN when the book is read;
2. copies every notebook of nbs/ (never modifying nbs/) into book/_src/, processed for reading: `#| ...`
   directive lines are stripped from the shown source, `#| hide` and `#| default_exp` cells are dropped, the
   leading `---` of `show_doc` output is removed (it breaks Sphinx), widget state and CDN-backed outputs are
   dropped, and nothing is executed: the committed outputs are what is shown;
3. writes _config.yml and _toc.yml from the file list (parts by the notebooks' number prefix, titles from each
   notebook's first `# Title` line), so a new notebook appears without editing any configuration;
4. runs jupyter-book 1 (Sphinx) with warnings as errors, then checks the HTML pages load no script, style
   sheet or font from another host.

Only the standard library and jupyter-book (in .venv) are needed. Any failure exits non-zero with a message.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
NBS = ROOT / "nbs"
SRC = BOOK / "_src"
OUT = BOOK / "_build"
HTML = OUT / "html"
MATHJAX_PKG = BOOK / "node_modules" / "mathjax"
MATHJAX_ENTRY = "tex-chtml.js"
# MathJax is served from _static/mathjax/ in the output; its source folder must not be called `_static`,
# because jupyter-book 1 adds every .js file under a book's `_static` folder to every page as a script.
ASSETS = "_assets"

# Book parts by the first digit of a notebook's number prefix (CONTRACTS: 0x foundations, 1x data, ...).
PARTS = [("Foundations", "0"), ("Datasets", "1"), ("Components", "2"), ("Models", "3"), ("Experiments", "456")]
OTHER_PART = "Appendix"

# Warnings that are not errors in a book of notebooks: headings inside cell outputs (show_doc writes `###`)
# and code that Pygments cannot lex (a traceback shown as text, a shell session).
SUPPRESSED_WARNINGS = ["myst.header", "misc.highlighting_failure", "mystnb.mime_priority"]


class BuildError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[book] {msg}", flush=True)


# --------------------------------------------------------------------------------------------------- MathJax
def ensure_mathjax() -> Path:
    "Path of the local MathJax `es5` folder, installing it with npm from book/package-lock.json if missing."
    es5 = MATHJAX_PKG / "es5"
    if not (es5 / MATHJAX_ENTRY).exists():
        npm = shutil.which("npm")
        if npm is None:
            raise BuildError("MathJax is not installed in book/node_modules and `npm` is not on PATH. "
                             "Install Node.js and npm (Debian: `apt-get install -y npm`), then rerun `make book`.")
        cmd = [npm, "ci" if (BOOK / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
        log(f"installing MathJax: {' '.join(cmd[1:])} (in book/)")
        subprocess.run(cmd, cwd=BOOK, check=True)
        if not (es5 / MATHJAX_ENTRY).exists():
            raise BuildError(f"npm finished but {es5 / MATHJAX_ENTRY} does not exist")
    return es5


def stage_mathjax(es5: Path) -> None:
    "Copy MathJax into the book source as <src>/_assets/mathjax (html_static_path -> _static/mathjax/)."
    dest = SRC / ASSETS / "mathjax"
    version = json.loads((MATHJAX_PKG / "package.json").read_text())["version"]
    stamp = dest / ".version"
    if stamp.exists() and stamp.read_text() == version and (dest / MATHJAX_ENTRY).exists():
        return
    shutil.rmtree(dest, ignore_errors=True)
    # The one combined file the pages load, plus the folders it loads from on demand: fonts (output/chtml),
    # TeX extensions (input/tex), the accessibility menu and speech (a11y, sre, ui). The other combined
    # files (SVG output, MathML input, ...) are never loaded: leaving them out halves the copy.
    dest.mkdir(parents=True)
    shutil.copy2(es5 / MATHJAX_ENTRY, dest / MATHJAX_ENTRY)
    for folder in ("a11y", "adaptors", "input", "output", "sre", "ui"):
        if (es5 / folder).is_dir():
            shutil.copytree(es5 / folder, dest / folder)
    stamp.write_text(version)


def stage_css() -> None:
    write_if_changed(SRC / ASSETS / "book.css", (BOOK / "book.css").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------- notebooks
_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*([^\s:]+)\s*:?\s?(.*?)\s*$")
_MAGIC = re.compile(r"^\s*%%\w+")
_DROP_DIRECTIVES = {"hide", "default_exp"}
_NBDEV_EXPORT_CALL = re.compile(r"^\s*(import nbdev;?\s*)?(nbdev\.)?nbdev_export\(\s*\)\s*$", re.M)
_CALLOUT = re.compile(r"^(\s*):::+\s*\{\s*\.callout-(note|tip|warning|important|caution)[^}]*\}\s*$", re.M)
_SOURCE_LINK = re.compile(r"^\[source\]\([^)]*\)(\{[^}]*\})?\s*\n", re.M)
_WIDGET_MIMES = {"application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"}


_ENV_BEGIN = re.compile(r"^\s*\\begin\{(align|alignat|equation|gather|multline|eqnarray)(\*?)\}")
_FENCE = re.compile(r"^\s*(```|~~~)")


def wrap_bare_environments(md: str) -> str:
    """Put `$$` around a LaTeX environment written straight into markdown (`\\begin{align} ... \\end{align}`, as
    Jupyter allows). MathJax then typesets it like Jupyter does: numbered only where the author wrote `\\tag{..}`
    (the paper's equation numbers), never with an automatic (1), (2) that would clash with them."""
    out, lines, i = [], md.split("\n"), 0
    in_fence = in_math = False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.strip().startswith("$$"):
            # a `$$` line opens or closes display math, unless it opens and closes on the same line
            if not (line.strip() != "$$" and line.strip().endswith("$$") and len(line.strip()) > 2):
                in_math = not in_math
        elif not in_fence and not in_math and (m := _ENV_BEGIN.match(line)):
            end = re.compile(r"\\end\{" + m.group(1) + re.escape(m.group(2)) + r"\}")
            j = i
            while j < len(lines) and not end.search(lines[j]):
                j += 1
            if j < len(lines):
                out += ["$$", *lines[i:j + 1], "$$"]
                i = j + 1
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _text(src) -> str:
    return "".join(src) if isinstance(src, list) else (src or "")


def split_directives(source: str) -> tuple[dict[str, str], str]:
    "nbdev directives at the top of a code cell (`#| name: value`, blanks and cell magics allowed among them)."
    lines = source.splitlines(True)
    directives, i = {}, 0
    while i < len(lines):
        line = lines[i]
        if m := _DIRECTIVE.match(line):
            value = m.group(2)
            directives[m.group(1)] = "" if value == "true" else value
        elif not (_MAGIC.match(line) or not line.strip()):
            break
        i += 1
    kept_magics = [l for l in lines[:i] if _MAGIC.match(l)]
    return directives, "".join(kept_magics + lines[i:])


def collapse_carriage_returns(text: str) -> str:
    "What a terminal shows for progress bars: each line keeps only what follows its last `\\r`."
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line else line for line in text.split("\n"))


def clean_output(out: dict, where: str, tags: list[str]) -> dict | None:
    kind = out.get("output_type")
    if kind == "error":
        if "raises-exception" in tags:
            return out
        raise BuildError(f"{where}: the committed output is an error ({out.get('ename')}: {out.get('evalue')}). "
                         "Fix the cell and re-execute the notebook, or tag the cell `raises-exception`.")
    if kind == "stream":
        out = dict(out, text=collapse_carriage_returns(_text(out.get("text"))))
        return out if out["text"].strip() else None
    if kind in ("display_data", "execute_result"):
        data = {k: v for k, v in out.get("data", {}).items() if k not in _WIDGET_MIMES}
        if "text/markdown" in data:
            md = _text(data["text/markdown"])
            # show_doc output starts with a `---` rule that Sphinx reads as a broken transition/front matter,
            # and carries a `[source](...)` link to a repository page; the code is shown right above it anyway.
            md = re.sub(r"^\s*---\s*\n", "", md)
            md = _SOURCE_LINK.sub("", md)
            data["text/markdown"] = md
        if not data or (set(data) == {"text/plain"} and re.fullmatch(r"\s*(HBox|VBox|FloatProgress|IntProgress)\(.*",
                                                                      _text(data["text/plain"]), re.S)):
            return None
        return dict(out, data=data)
    return out


def find_title(cells: list[dict]) -> str | None:
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in _text(cell.get("source")).splitlines():
                if m := re.match(r"^#\s+(.+?)\s*#*\s*$", line):
                    return m.group(1).strip()
    return None


def front_matter_title(cell: dict) -> str | None:
    src = _text(cell.get("source"))
    if src.lstrip().startswith("---"):
        m = re.search(r"^title:\s*['\"]?(.+?)['\"]?\s*$", src, re.M)
        return m.group(1) if m else None
    return None


def title_from_name(path: Path) -> str:
    stem = re.sub(r"^\d+[a-z]?_", "", path.stem)
    return stem.replace("_", " ").replace(".", " · ").strip().capitalize() or path.stem


def process_notebook(path: Path) -> tuple[dict, str]:
    "A copy of the notebook at `path` prepared for reading, and its title."
    rel = path.relative_to(NBS)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BuildError(f"nbs/{rel}: not a readable notebook ({e})") from e
    if not isinstance(nb, dict) or "cells" not in nb:
        raise BuildError(f"nbs/{rel}: not a notebook (no `cells`)")

    title, cells = None, []
    for i, cell in enumerate(nb["cells"]):
        kind, where = cell.get("cell_type"), f"nbs/{rel}, cell {i}"
        meta = dict(cell.get("metadata", {}))
        tags = list(meta.get("tags", []))
        if kind == "raw":
            # Quarto front matter (`---\ntitle: ...\n---`) or raw LaTeX: neither belongs in the HTML book.
            title = title or front_matter_title(cell)
            continue
        if kind == "markdown":
            src = _CALLOUT.sub(lambda m: f"{m.group(1)}:::{{{m.group(2)}}}", _text(cell.get("source")))
            src = wrap_bare_environments(src)
            cells.append({"cell_type": "markdown", "metadata": meta, "source": src,
                          **({"attachments": cell["attachments"]} if cell.get("attachments") else {})})
            continue
        if kind != "code":
            raise BuildError(f"{where}: unknown cell type {kind!r}")
        directives, src = split_directives(_text(cell.get("source")))
        directives.update({k: ("" if v == "true" else v) for k, v in (meta.pop("nbdev", None) or {}).items()})
        if _DROP_DIRECTIVES & directives.keys() or directives.get("include") == "false":
            continue
        if _NBDEV_EXPORT_CALL.search(src) or not src.strip():
            continue  # an nbdev_export() cell fails when run from the book folder; empty cells say nothing
        if "hide_input" in directives or directives.get("echo") == "false":
            tags.append("remove-input")
        if "hide_output" in directives or directives.get("output") == "false":
            tags.append("remove-output")
        if "code-fold" in directives:
            tags.append("hide-input")
        outputs = [o for o in (clean_output(o, where, tags) for o in cell.get("outputs", [])) if o is not None]
        if tags:
            meta["tags"] = sorted(set(tags))
        cells.append({"cell_type": "code", "metadata": meta, "source": src,
                      "execution_count": cell.get("execution_count"), "outputs": outputs})

    md_title = find_title(cells)
    title = md_title or title or title_from_name(path)
    if md_title is None:  # Sphinx needs a heading to title the page and its sidebar entry
        cells.insert(0, {"cell_type": "markdown", "metadata": {}, "source": f"# {title}"})

    metadata = dict(nb.get("metadata", {}))
    metadata.pop("widgets", None)  # widget state makes myst-nb load require.js and the widget manager from a CDN
    kernelspec = metadata.get("kernelspec") or {"name": "python3", "display_name": "Python 3", "language": "python"}
    metadata["kernelspec"] = kernelspec
    metadata.setdefault("language_info", {"name": "python"})
    for i, cell in enumerate(cells):  # nbformat 4.5 wants unique cell ids; nbdev-clean may have removed them
        cell["id"] = f"c{i:03d}"
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}, title


def find_notebooks() -> list[Path]:
    "Every notebook under nbs/ that nbdev would see (names starting with `_` or `.` are skipped, as nbdev does)."
    found = []
    for path in sorted(NBS.rglob("*.ipynb")):
        parts = path.relative_to(NBS).parts
        if any(p.startswith(("_", ".")) for p in parts):
            continue
        found.append(path)
    if not any(p.relative_to(NBS) == Path("index.ipynb") for p in found):
        raise BuildError("nbs/index.ipynb (the book's front page) is missing")
    return found


def part_of(path: Path) -> str:
    m = re.match(r"^(\d)", path.name)
    if m:
        for name, digits in PARTS:
            if m.group(1) in digits:
                return name
    return OTHER_PART


def write_if_changed(path: Path, text: str) -> None:
    "Keep mtimes of unchanged pages, so Sphinx rebuilds only what changed."
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def stage_notebooks() -> list[tuple[Path, str]]:
    "Process nbs/ into book/_src/; returns (relative path, title) per notebook, in file-name order."
    notebooks, staged = find_notebooks(), []
    for path in notebooks:
        rel = path.relative_to(NBS)
        nb, title = process_notebook(path)
        write_if_changed(SRC / rel, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        staged.append((rel, title))
    # pictures that notebooks reference by relative path (nbs/images/...)
    for asset in NBS.rglob("*"):
        if asset.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".svg"} and ".ipynb_checkpoints" not in asset.parts:
            dest = SRC / asset.relative_to(NBS)
            if not dest.exists() or dest.stat().st_mtime < asset.stat().st_mtime:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(asset, dest)
    # notebooks deleted from nbs/ must disappear from the book
    wanted = {SRC / rel for rel, _ in staged}
    for old in SRC.rglob("*.ipynb"):
        if old not in wanted and ASSETS not in old.relative_to(SRC).parts:
            old.unlink()
    return staged


# ---------------------------------------------------------------------------------------------------- config
def write_toc(staged: list[tuple[Path, str]]) -> None:
    by_part: dict[str, list[tuple[Path, str]]] = {}
    for rel, title in staged:
        if rel == Path("index.ipynb"):
            continue
        by_part.setdefault(part_of(rel), []).append((rel, title))
    lines = ["# Generated by book/build.py from the notebooks in nbs/: do not edit.", "format: jb-book",
             "root: index"]
    order = [name for name, _ in PARTS] + [OTHER_PART]
    if any(by_part.values()):
        lines.append("parts:")
        for part in order:
            if by_part.get(part):
                lines += [f"  - caption: {part}", "    chapters:"]
                # the sidebar shows each page's own first heading (its `# Title`, with its markup rendered)
                lines += [f"      - file: {rel.with_suffix('').as_posix()}  # {title}" for rel, title in by_part[part]]
    write_if_changed(SRC / "_toc.yml", "\n".join(lines) + "\n")


CONFIG = """\
# Generated by book/build.py: do not edit (change build.py instead).
title: "mrc-book"
author: "the mrc-book authors"
copyright: "2025"
only_build_toc_files: true
exclude_patterns: [_build, _assets, "**.ipynb_checkpoints"]
execute:
  execute_notebooks: "off"   # the book shows the outputs committed in nbs/; it never runs a notebook
parse:
  # no `amsmath`: it numbers every bare environment (1), (2)...; build.py wraps those in $$ instead (see
  # wrap_bare_environments), so only the numbers that an author tags appear
  myst_enable_extensions: [colon_fence, deflist, dollarmath, html_image]
  myst_dmath_double_inline: true
html:
  use_repository_button: false
  use_issues_button: false
  use_edit_page_button: false
  use_download_button: true
  home_page_in_navbar: true
  use_multitoc_numbering: false
  extra_footer: "Every number in this book is read from a run record in <code>results/</code>."
launch_buttons:
  notebook_interface: jupyterlab
  binderhub_url: ""
  jupyterhub_url: ""
  colab_url: ""
  thebe: false
repository:
  url: "https://github.com/mrc-book/mrc-book"
  path_to_book: "nbs"
  branch: main
sphinx:
  recursive_update: true     # merge html_theme_options below into jupyter-book's own instead of replacing them
  config:
    mathjax_path: "mathjax/{entry}"
    html_static_path: ["{assets}"]
    html_css_files: ["book.css"]
    suppress_warnings: {suppress}
    html_show_sourcelink: false
    nb_ipywidgets_js: {{}}      # no widget manager from a CDN
    nb_merge_streams: true
    html_theme_options:
      show_navbar_depth: 1
      show_toc_level: 2
      use_sidenotes: false
"""


def write_config() -> None:
    text = CONFIG.format(entry=MATHJAX_ENTRY, assets=ASSETS, suppress=json.dumps(SUPPRESSED_WARNINGS))
    write_if_changed(SRC / "_config.yml", text)


# ---------------------------------------------------------------------------------------------------- checks
_EXTERNAL = re.compile(r"""<(script|link|img|iframe)\b[^>]*?\b(src|href)=["'](https?:)?//[^"']+["'][^>]*>""", re.I)
_EXTERNAL_CSS = re.compile(r"""(@import\s+url\(|url\()\s*["']?(https?:)?//""", re.I)


def check_html() -> None:
    "The book must read offline: no page may load a script, style sheet, font or picture from another host."
    index = HTML / "index.html"
    if not index.exists():
        raise BuildError(f"{index} was not written")
    if not (HTML / "_static" / "mathjax" / MATHJAX_ENTRY).exists():
        raise BuildError("MathJax was not copied into the book (_static/mathjax/)")
    problems = []
    for page in HTML.rglob("*.html"):
        text = page.read_text(encoding="utf-8", errors="replace")
        for m in _EXTERNAL.finditer(text):
            tag = m.group(0)
            # <link rel="canonical"/"prev"/...> are plain links, not loaded resources; so are <a> tags (not matched)
            if m.group(1).lower() == "link" and not re.search(r"rel=[\"'](stylesheet|preload|icon|modulepreload)", tag):
                continue
            problems.append(f"{page.relative_to(HTML)}: {tag[:160]}")
    for css in (HTML / "_static").rglob("*.css"):
        if _EXTERNAL_CSS.search(css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{css.relative_to(HTML)}: loads a resource from another host")
    if problems:
        raise BuildError("the HTML loads resources from other hosts (it must read offline):\n  "
                         + "\n  ".join(problems[:20]))
    mathjax_tags = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', index.read_text(encoding="utf-8"))
    if not mathjax_tags or any("//" in s for s in mathjax_tags):
        raise BuildError(f"index.html does not load the local MathJax (found {mathjax_tags})")


# ------------------------------------------------------------------------------------------------------ main
def jupyter_book_command() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found is None:
        raise BuildError("jupyter-book is not installed: run `make install` (it installs jupyter-book<2 into .venv)")
    return [found]


def main(argv: list[str] | None = None) -> int:
    global NBS, SRC, OUT, HTML
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="rebuild every page, not only the changed ones")
    ap.add_argument("--no-strict", dest="strict", action="store_false",
                    help="report Sphinx warnings without failing the build")
    ap.add_argument("--nbs", type=Path, default=NBS, help="notebook folder (default: nbs/)")
    ap.add_argument("--build-dir", type=Path, default=BOOK,
                    help="where _src/ and _build/html/ go (default: book/); for trying the build on other notebooks")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    NBS, build_dir = args.nbs.resolve(), args.build_dir.resolve()
    SRC, OUT = build_dir / "_src", build_dir / "_build"
    HTML = OUT / "html"

    start = time.perf_counter()
    try:
        SRC.mkdir(parents=True, exist_ok=True)
        es5 = ensure_mathjax()
        stage_mathjax(es5)
        stage_css()
        staged = stage_notebooks()
        write_toc(staged)
        write_config()
        log(f"{len(staged)} notebooks staged in {SRC}/ ({time.perf_counter() - start:.1f} s)")

        cmd = jupyter_book_command() + ["build", str(SRC), "--path-output", str(build_dir), "--builder", "html"]
        if args.strict:
            cmd += ["-W", "--keep-going"]
        if args.all:
            cmd += ["--all"]
        if not args.verbose:
            cmd += ["-q"]
        # nothing may be executed, but keep a notebook's relative paths meaningful if something ever is
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        result = subprocess.run(cmd, cwd=ROOT, env=env)
        if result.returncode != 0:
            raise BuildError(f"jupyter-book failed (exit {result.returncode}); the messages above name the page "
                             f"({SRC}/NAME.ipynb is the processed copy of {NBS}/NAME.ipynb). "
                             "Warnings count as errors: fix them, or run "
                             "`python book/build.py --no-strict` to see the book anyway.")
        check_html()
    except BuildError as e:
        print(f"[book] ERROR: {e}", file=sys.stderr, flush=True)
        return 1
    except subprocess.CalledProcessError as e:
        print(f"[book] ERROR: {' '.join(map(str, e.cmd))} failed with exit {e.returncode}", file=sys.stderr)
        return 1
    log(f"built {HTML / 'index.html'} in {time.perf_counter() - start:.1f} s (open it in a browser)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
