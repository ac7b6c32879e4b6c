"""The docs cover the repository: every proof, protocol, experiment and tutorial has a page.

These check the page generator and the toctrees without building the docs
(``make docs`` builds them, with warnings as errors).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("vcompute_docs_ext", DOCS / "_ext" / "vcompute_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.GEN = tmp_path_factory.mktemp("gen")  # never touch the real docs/_build/_gen from a test
    return mod


@pytest.mark.parametrize("kind", ["proofs", "protocols"])
def test_every_document_gets_a_page_in_a_glob_toctree(gen, kind):
    sources = gen.generate_documents(kind)
    assert sources == sorted((ROOT / kind).glob("*.md"))
    pages = {p.stem for p in (gen.GEN / kind).glob("*.md")}
    assert {s.stem for s in sources} <= pages
    assert f"_gen/{kind}/*" in (DOCS / f"{kind}.md").read_text()


def test_every_experiment_config_gets_a_catalogue_page(gen, tmp_path):
    configs = gen.generate_experiments(run=False, cache_root=tmp_path)
    assert configs == sorted((ROOT / "experiments").glob("*.toml")) and configs
    for cfg in configs:
        page = (gen.GEN / "experiments" / f"{cfg.stem}.md").read_text()
        assert f"vcompute run experiments/{cfg.name}" in page
        first_comment = next(line for line in cfg.read_text().splitlines() if line.startswith("#"))
        assert first_comment.lstrip("# ").strip() in page
    assert "_gen/experiments/*" in (DOCS / "experiments.md").read_text()


def test_header_comment_stops_at_the_first_table(gen):
    text = "# Reproduces: X.\n#\n# Run: vcompute run e.toml\n\n[experiment]\n# not header\nname = 'x'\n"
    assert gen.header_comment(text) == "Reproduces: X.\n\nRun: vcompute run e.toml"


def test_repository_links_are_rewritten(gen):
    src = ROOT / "proofs" / "example.md"
    text = ("See [the code](../vcompute/verify/freivalds/scheme.py), [tests](../tests/verify/test_freivalds.py), "
            "[other](replication.md), [web](https://example.org) and ![img](x.png).\n"
            "```\n[kept](../vcompute/core/types.py)\n```\n")
    out = gen.rewrite_links(text, src)
    assert "the code ({py:mod}`vcompute.verify.freivalds.scheme`)" in out
    assert "tests (`tests/verify/test_freivalds.py`)" in out
    assert "[other](/_build/_gen/proofs/replication.md)" in out
    assert "[web](https://example.org)" in out and "![img](x.png)" in out
    assert "[kept](../vcompute/core/types.py)" in out


def test_api_pages_hide_private_modules(gen):
    mods = gen.public_modules()
    assert "vcompute.verify.freivalds" in mods and "vcompute.experiment.ray_executor" in mods
    assert not any(part.startswith("_") for m in mods for part in m.split("."))


def test_every_tutorial_is_in_the_toctree_and_executes():
    index = (DOCS / "tutorials" / "index.md").read_text()
    for page in (DOCS / "tutorials").glob("*.md"):
        if page.name == "index.md":
            continue
        assert re.search(rf"^{page.stem}$", index, re.M), f"{page.name} missing from tutorials/index.md"
        assert "file_format: mystnb" in page.read_text(), f"{page.name} is not an executable MyST notebook"


def test_build_is_offline_strict_and_executes_tutorials():
    conf = (DOCS / "conf.py").read_text()
    assert "sphinx.ext.intersphinx" not in conf
    assert 'nb_execution_raise_on_error = True' in conf
    assert "sphinx-build -W --keep-going" in (ROOT / "Makefile").read_text()
