"""Tests of the notebook processing in book/build.py (fast: nothing here runs Sphinx).

    .venv/bin/pytest tests/test_book_build.py
"""
import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("book_build", Path(__file__).resolve().parents[1] / "book" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def code(src, outputs=(), **meta):
    return {"cell_type": "code", "metadata": meta, "source": src, "execution_count": 1, "outputs": list(outputs)}


def md(src):
    return {"cell_type": "markdown", "metadata": {}, "source": src}


def write_nb(folder: Path, name: str, cells, metadata=None) -> Path:
    path = folder / name
    path.write_text(json.dumps({"cells": cells, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def nbs(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "NBS", tmp_path)
    return tmp_path


def test_split_directives_strips_only_leading_directives():
    dirs, src = build.split_directives("#| export\n#|exporti\n# | slow\n\ndef f():  #| not a directive here\n    pass\n")
    assert dirs == {"export": "", "exporti": "", "slow": ""}
    assert src == "def f():  #| not a directive here\n    pass\n"
    dirs, src = build.split_directives("#| echo: false\n%%time\nx = 1")
    assert dirs == {"echo": "false"} and src == "%%time\nx = 1"


def test_process_notebook_drops_hidden_cells_and_keeps_exported_code(nbs):
    path = write_nb(nbs, "23_layers.x.ipynb", [
        md("# Layers X\n\n> summary"),
        code("#| default_exp layers.x"),
        code("#| hide\nfrom fastcore.test import test_eq"),
        code("#| export\ndef f(x): return x"),
        code("#| hide_input\nprint(1)"),
        code("nbdev_export()"),
        code("   \n"),
        {"cell_type": "raw", "metadata": {}, "source": "---\ntitle: ignored\n---"},
    ])
    nb, title = build.process_notebook(path)
    assert title == "Layers X"
    sources = [c["source"] for c in nb["cells"]]
    assert sources == ["# Layers X\n\n> summary", "def f(x): return x", "print(1)"]
    assert nb["cells"][2]["metadata"]["tags"] == ["remove-input"]
    assert len({c["id"] for c in nb["cells"]}) == 3 and nb["nbformat_minor"] == 5


def test_show_doc_rule_and_source_link_are_removed():
    out = {"output_type": "display_data", "metadata": {},
           "data": {"text/markdown": "---\n\n[source](https://x/y.py#L3){target=\"_blank\" style=\"float:right\"}\n\n### f\n\n*Doc*",
                    "text/plain": "<ShowDoc>"}}
    cleaned = build.clean_output(out, "here", [])
    assert cleaned["data"]["text/markdown"] == "### f\n\n*Doc*"
    assert out["data"]["text/markdown"].startswith("---")  # the input is not modified


def test_error_output_fails_unless_tagged():
    err = {"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []}
    with pytest.raises(build.BuildError, match="ValueError: boom"):
        build.clean_output(err, "nbs/x.ipynb, cell 3", [])
    assert build.clean_output(err, "here", ["raises-exception"]) is err


def test_widgets_and_progress_bars():
    widget = {"output_type": "display_data", "metadata": {},
              "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "a"},
                       "text/plain": "HBox(children=(FloatProgress(value=0.0),))"}}
    assert build.clean_output(widget, "here", []) is None
    stream = {"output_type": "stream", "name": "stderr", "text": " 0%|   | 0/3\r100%|###| 3/3\nnext line\n"}
    assert build.clean_output(stream, "here", [])["text"] == "100%|###| 3/3\nnext line\n"


def test_untitled_notebook_gets_a_title_from_its_name(nbs):
    nb, title = build.process_notebook(write_nb(nbs, "41_squad_rnet.ipynb", [code("x = 1")]))
    assert title == "Squad rnet" and nb["cells"][0]["source"] == "# Squad rnet"


def test_bare_latex_environments_are_wrapped_once():
    text = "Eq.\n\\begin{align}\na &= b \\tag{3}\n\\end{align}\n\n$$\n\\begin{aligned}x\\end{aligned}\n$$\n```\n\\begin{align}\n```"
    out = build.wrap_bare_environments(text).split("\n")
    assert out[:6] == ["Eq.", "$$", "\\begin{align}", "a &= b \\tag{3}", "\\end{align}", "$$"]
    assert out.count("$$") == 4  # the already-wrapped block and the fenced code are left alone


def test_toc_parts_follow_number_prefixes(nbs, tmp_path, monkeypatch):
    src = tmp_path / "_src"
    monkeypatch.setattr(build, "SRC", src)
    for name in ["index", "01_text", "10_data.sources", "23_layers.rnn", "33_models.rnet", "41_a", "63_b", "90_c"]:
        write_nb(nbs, name + ".ipynb", [md(f"# {name}")])
    write_nb(nbs, "_private.ipynb", [md("# hidden")])
    staged = build.stage_notebooks()
    assert [str(rel) for rel, _ in staged][0] == "01_text.ipynb" and len(staged) == 8
    build.write_toc(staged)
    toc = (src / "_toc.yml").read_text()
    captions = [line.split(": ")[1] for line in toc.splitlines() if "caption:" in line]
    assert captions == ["Foundations", "Datasets", "Components", "Models", "Experiments", "Appendix"]
    assert toc.index("41_a") < toc.index("63_b") < toc.index("Appendix") < toc.index("90_c")
    assert "_private" not in toc and "root: index" in toc
    # a notebook removed from nbs/ leaves the book
    (nbs / "63_b.ipynb").unlink()
    build.write_toc(build.stage_notebooks())
    assert not (src / "63_b.ipynb").exists() and "63_b" not in (src / "_toc.yml").read_text()


def test_missing_index_is_an_error(nbs):
    write_nb(nbs, "01_text.ipynb", [md("# Text")])
    with pytest.raises(build.BuildError, match="index.ipynb"):
        build.find_notebooks()
