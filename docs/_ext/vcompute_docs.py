"""Sphinx extension: pages generated from the repository at build time.

- ``docs/_build/_gen/proofs/*.md`` and ``docs/_build/_gen/protocols/*.md``: one page per
  ``proofs/*.md`` / ``protocols/*.md`` (contracts ``protocols/*.vy`` are shown
  with the spec of the same stem). Links to repository files are rewritten:
  ``vcompute/...py`` to the API page of the module, other files to their path.
- ``docs/_build/_gen/experiments/*.md``: one page per ``experiments/*.toml``: the header
  comment, the commands, the grid, and the plots of its smoke variant (run
  at build time, cached by the config's hash; ``VCOMPUTE_DOCS_RUN_EXPERIMENTS=0``
  skips running).
- ``docs/_build/_gen/api/*.md``: the API reference, one page per public module
  (private modules, ``_name``, are hidden), documenting each name once
  where it is defined and linking re-exports to it.

Everything is regenerated on each build; new files appear automatically.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
# Generated sources live in the build tree, so a build writes nothing outside docs/_build.
GEN = DOCS / "_build" / "_gen"

_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
# `vcompute.verify.freivalds.Freivalds` in a document becomes a link to its API entry.
_CODE_NAME = re.compile(r"(^|[^`}])`(vcompute(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


# ---------------------------------------------------------------- helpers
def _prune(out_dir: Path, keep: set[str]) -> None:
    """Delete generated pages whose source is gone."""
    for p in out_dir.glob("*.md"):
        if p.name not in keep:
            p.unlink()


def _write(path: Path, text: str) -> None:
    """Write only when changed, so Sphinx does not rebuild untouched pages."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def rewrite_links(text: str, source: Path) -> str:
    """Rewrite relative Markdown links of a repository document for the docs.

    Links to ``proofs/`` or ``protocols/`` documents point at their pages,
    ``vcompute/**.py`` at the module's API page, any other repository file
    becomes its path in code (the docs do not ship those files).
    """

    def sub(m: re.Match[str]) -> str:
        label, target = m.group(1), m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)
        path, _, anchor = target.partition("#")
        try:
            rel = (source.parent / path).resolve().relative_to(ROOT)
        except ValueError:
            return m.group(0)
        parts = rel.parts
        if len(parts) == 2 and parts[0] in ("proofs", "protocols") and rel.suffix == ".md":
            return f"[{label}](/_build/_gen/{parts[0]}/{rel.stem}.md)"
        if parts and parts[0] == "vcompute" and rel.suffix == ".py":
            mod = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            return f"{label} ({{py:mod}}`{mod}`)"
        shown = f"{rel}#{anchor}" if anchor else str(rel)
        return label if label.strip("`") == shown else f"{label} (`{shown}`)"

    out, in_fence = [], False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        out.append(line if in_fence else _CODE_NAME.sub(r"\1{py:obj}`\2`", _LINK.sub(sub, line)))
    return "".join(out)


# ---------------------------------------------------------------- proofs, protocols
def generate_documents(kind: str) -> list[Path]:
    """One page per ``<kind>/*.md`` (kind: proofs or protocols); returns the sources covered."""
    src_dir, out_dir = ROOT / kind, GEN / kind
    out_dir.mkdir(parents=True, exist_ok=True)
    keep: set[str] = set()
    sources = sorted(src_dir.glob("*.md")) if src_dir.is_dir() else []
    for src in sources:
        text = rewrite_links(src.read_text(), src)
        if not text.lstrip().startswith("# "):
            text = f"# {src.stem}\n\n{text}"
        extra = ""
        for contract in sorted(src_dir.glob(f"{src.stem}*.vy")):
            extra += (f"\n\n## Contract `{contract.relative_to(ROOT)}`\n\n"
                      f"```{{literalinclude}} /../{contract.relative_to(ROOT)}\n:language: python\n```\n")
        keep.add(f"{src.stem}.md")
        _write(out_dir / f"{src.stem}.md",
               f"<!-- generated from {src.relative_to(ROOT)}; edit that file -->\n{text}{extra}\n")
    if kind == "protocols" and src_dir.is_dir():
        specs = {s.stem for s in sources}
        orphans = [c for c in sorted(src_dir.glob("*.vy")) if not any(c.stem.startswith(s) for s in specs)]
        if orphans:
            body = "# Contracts without a spec page\n\n" + "".join(
                f"## `{c.name}`\n\n```{{literalinclude}} /../{c.relative_to(ROOT)}\n:language: python\n```\n\n"
                for c in orphans)
            _write(out_dir / "zz-contracts.md", body)
            keep.add("zz-contracts.md")
    if not keep:  # an empty glob toctree is a warning; say plainly that there is nothing yet
        _write(out_dir / "none.md", f"# No documents yet\n\n`{kind}/` holds no `*.md` document yet.\n")
        keep.add("none.md")
    _prune(out_dir, keep)
    return sources


# ---------------------------------------------------------------- claims
def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def generate_claims() -> Path:
    """``claims.md``: every cited number, its config, the value it reproduces and its anchor."""
    claims = tomllib.loads((ROOT / "proofs" / "claims.toml").read_text()).get("claim", [])
    lines = ["# Claims and where they come from\n",
             "Every number the proofs and the README cite, with the shipped config that reproduces it "
             "(`proofs/claims.toml`). `tests/docs/test_claims.py` runs each config's smoke variant on every "
             "test run and fails when the metric leaves the smoke band; *full size* is what the full config "
             "gives, as the source cites it; *anchor* is the published number it is compared with.\n",
             "| claim | source | config | metric | smoke band | full size | anchor |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in claims:
        where = ", ".join(f"{k} = {v}" for k, v in c.get("where", {}).items())
        metric = f"`{c['metric']}`" + (f" at {where}" if where else "")
        lo, hi = c["smoke_band"]
        band = f"{lo}" if lo == hi else f"[{lo}, {hi}]"
        cfg = c["config"]
        lines.append(f"| {_cell(c['claim'])} | {_cell(c['source'])} | "
                     f"[`{Path(cfg).stem}`](/_build/_gen/experiments/{Path(cfg).stem}.md) | {_cell(metric)} | "
                     f"{band} | {_cell(c['full'])} | {_cell(c['anchor']) or '-'} |")
    path = GEN / "claims.md"
    _write(path, "\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- experiments
def _metrics_section(data: dict[str, Any]) -> str:
    """The config's report metrics with their units and meanings."""
    from vcompute.experiment.metrics import metric_info
    from vcompute.experiment.tasks import TASKS

    task = data.get("experiment", {}).get("task", "")
    names = list(data.get("report", {}).get("metrics", []))
    for plot in data.get("plots", []):
        ys = plot.get("y", [])
        names += [ys] if isinstance(ys, str) else list(ys)
        if plot.get("x_metric"):
            names.append(plot["x"])
    names = list(dict.fromkeys(names))
    if not names:
        return ""
    cls = TASKS.get(task) if task in TASKS else None
    rows = []
    for m in names:
        info = metric_info(m, task, cls)
        text = f"{info.meaning}" + (f"; nan: {info.nan}" if info.nan else "") if info else "(no unit declared)"
        rows.append(f"| `{m}` | {info.unit if info else '-'} | {_cell(text)} |\n")
    return "## Metrics\n\n| metric | unit | meaning |\n| --- | --- | --- |\n" + "".join(rows)


def header_comment(text: str) -> str:
    """The leading ``#`` comment block of a TOML config, without the ``#``."""
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("#"):
            if s:
                break
            lines.append("")
            continue
        lines.append(s[1:][1:] if s[1:].startswith(" ") else s[1:])
    return "\n".join(lines).strip()


def _run_smoke(cfg: Path, cache: Path) -> tuple[list[Path], str]:
    """Run the smoke variant into ``cache`` (once per config content); return plots and the table."""
    if (cache / "ok").exists():
        return sorted((cache / "run" / "plots").glob("*.png")), (cache / "table.txt").read_text()
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    env = dict(os.environ, COLUMNS="160", NO_COLOR="1", TERM="dumb")
    cmd = [sys.executable, "-m", "vcompute.cli", "run", str(cfg), "--smoke", "--quiet",
           "--executor", "serial", "--out", str(cache / "run")]
    t0 = time.perf_counter()
    # Run inside the cache: relative paths in a config (a ledger file) stay under docs/_build.
    proc = subprocess.run(cmd, cwd=cache, capture_output=True, text=True, timeout=300, env=env)
    (cache / "seconds").write_text(f"{time.perf_counter() - t0:.1f}")
    if proc.returncode != 0:
        raise RuntimeError(f"smoke variant of {cfg.name} failed (rc {proc.returncode}): "
                           f"{proc.stderr.strip()[-1500:]}")
    table = proc.stdout.split("run directory:")[0].rstrip()
    (cache / "table.txt").write_text(table)
    (cache / "ok").touch()
    return sorted((cache / "run" / "plots").glob("*.png")), table


def _cache_dir(cfg: Path, cache_root: Path) -> Path:
    return cache_root / f"{cfg.stem}-{hashlib.sha256(cfg.read_bytes()).hexdigest()[:12]}"


def experiment_page(cfg: Path, run: bool, cache_root: Path) -> str:
    """The catalogue page of one config."""
    text = cfg.read_text()
    data = tomllib.loads(text)
    exp = data.get("experiment", {})
    rel = cfg.relative_to(ROOT)
    name = exp.get("name", cfg.stem)
    out = [f"# {name}\n", f"*{exp.get('description', '')}*\n" if exp.get("description") else ""]
    out.append(f"Config: `{rel}` · task `{exp.get('task', '?')}` "
               f"(see {{doc}}`/_build/_gen/api/vcompute.experiment.tasks`)\n")
    head = header_comment(text)
    if head:
        out.append("## What it reproduces\n\n```text\n" + head + "\n```\n")
    seeds = exp.get("seeds", 1)
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    n_runs = n_seeds
    for vals in data.get("grid", {}).values():
        n_runs *= len(vals)
    out.append("## Run it\n\n```sh\n"
               f"vcompute run {rel}                 # full: {n_runs} runs\n"
               f"vcompute run {rel} --smoke         # quick variant\n"
               f"vcompute run {rel} --executor ray  # the same sweep on Ray\n```\n")
    metrics = _metrics_section(data)
    if metrics:
        out.append(metrics)
    if data.get("grid"):
        out.append("## Grid\n\n| parameter | values |\n| --- | --- |\n" + "".join(
            f"| `{k}` | {', '.join(f'`{v}`' for v in vals)} |\n" for k, vals in data["grid"].items()))
    if run:
        plots, table = _run_smoke(cfg, _cache_dir(cfg, cache_root))
        took = _cache_dir(cfg, cache_root) / "seconds"
        took_s = f" It took {took.read_text()} s when these docs were built." if took.exists() else ""
        out.append("## Smoke variant, run while building these docs\n\n"
                   "Tiny sizes and few seeds (`--smoke`, serial executor): this shows what the output "
                   f"looks like, not the result; run the full config for that.{took_s}\n\n"
                   "```text\n" + table + "\n```\n")
        img_dir = GEN / "experiments" / "img"
        img_dir.mkdir(parents=True, exist_ok=True)
        for p in plots:
            dest = img_dir / f"{cfg.stem}-{p.name}"
            shutil.copyfile(p, dest)
            out.append(f"![{p.stem}](img/{dest.name})\n")
    return "\n".join(out)


def generate_experiments(run: bool, cache_root: Path) -> list[Path]:
    """One catalogue page per ``experiments/*.toml``; returns the configs covered."""
    out_dir = GEN / "experiments"
    out_dir.mkdir(parents=True, exist_ok=True)
    configs = sorted((ROOT / "experiments").glob("*.toml"))
    if run:  # smoke variants are independent subprocesses: run them side by side, one per core
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            for fut in [pool.submit(_run_smoke, c, _cache_dir(c, cache_root)) for c in configs]:
                fut.result()
    for cfg in configs:
        _write(out_dir / f"{cfg.stem}.md", experiment_page(cfg, run, cache_root))
    _prune(out_dir, {f"{c.stem}.md" for c in configs})
    return configs


# ---------------------------------------------------------------- API reference
def public_modules(package: str = "vcompute") -> list[str]:
    """Public modules of ``package`` (no ``_private`` path component, no deprecated re-export path)."""
    from vcompute.core.modules import package_modules

    return [m for m in package_modules() if m == package or m.startswith(package + ".")]


def exported_names(mod: Any) -> list[str]:
    """``__all__``, or the public classes and functions defined in ``mod``."""
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    return [n for n, o in vars(mod).items() if not n.startswith("_")
            and (inspect.isclass(o) or inspect.isfunction(o)) and getattr(o, "__module__", None) == mod.__name__]


def owners(modules: dict[str, Any]) -> dict[int, str]:
    """For each exported object (by id), the module that documents it.

    Classes and functions belong to their defining module when it exports
    them; anything else to the deepest module exporting it.
    """
    result: dict[int, str] = {}
    for name in sorted(modules, key=lambda m: m.count(".")):
        mod = modules[name]
        for attr in exported_names(mod):
            obj = getattr(mod, attr, None)
            if obj is None or inspect.ismodule(obj):
                continue
            home = getattr(obj, "__module__", None) if (inspect.isclass(obj) or inspect.isfunction(obj)) else None
            if home in modules and attr in exported_names(modules[home]):
                result[id(obj)] = home
            else:
                result[id(obj)] = name  # deeper modules come later and win
    return result


def generate_api() -> list[str]:
    """One page per public module; returns the module names."""
    out_dir = GEN / "api"
    out_dir.mkdir(parents=True, exist_ok=True)
    modules = {}
    for name in public_modules():
        modules[name] = importlib.import_module(name)  # an import error should fail the build loudly
    own = owners(modules)
    for name, mod in modules.items():
        mine, elsewhere = [], []
        for attr in exported_names(mod):
            obj = getattr(mod, attr, None)
            if obj is None or inspect.ismodule(obj):
                continue
            (mine if own.get(id(obj)) == name else elsewhere).append((attr, own.get(id(obj))))
        lines = [f"# `{name}`\n", "```{eval-rst}", f".. automodule:: {name}"]
        if mine:
            lines += [f"   :members: {', '.join(a for a, _ in mine)}", "   :show-inheritance:"]
        lines.append("```\n")
        if elsewhere:
            lines.append("Also importable from here: " + ", ".join(
                f"{{py:obj}}`{attr} <{home}.{attr}>`" for attr, home in elsewhere) + "\n")
        subs = [m for m in modules if m.rpartition(".")[0] == name]
        if subs:
            lines += ["```{toctree}", ":maxdepth: 1", ""] + [m for m in subs] + ["```\n"]
        _write(out_dir / f"{name}.md", "\n".join(lines) + "\n")
    _prune(out_dir, {f"{m}.md" for m in modules})
    return list(modules)


# ---------------------------------------------------------------- Sphinx hook
def _generate(app: Any) -> None:
    GEN.mkdir(parents=True, exist_ok=True)
    generate_documents("proofs")
    generate_documents("protocols")
    generate_claims()
    run = os.environ.get("VCOMPUTE_DOCS_RUN_EXPERIMENTS", "1") != "0"
    generate_experiments(run, Path(app.outdir).parent / ".experiment-cache")
    generate_api()


_REMOTE = re.compile(r"""<(script|link|img|iframe)\b[^>]*?\b(src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""", re.I)


def remote_resources(html: str) -> list[str]:
    """URLs of scripts, styles, images or frames that ``html`` would load from the network.

    Plain links (``<a href>``) are not loads and are not reported.

    Example:
        >>> remote_resources('<script src="https://cdn.example/x.js"></script><a href="https://a.b">x</a>')
        ['https://cdn.example/x.js']
    """
    return [m.group(3) for m in _REMOTE.finditer(html)
            if m.group(1).lower() != "link" or "stylesheet" in m.group(0).lower() or "preload" in m.group(0).lower()
            or "icon" in m.group(0).lower()]


def _check_offline(app: Any, exc: BaseException | None) -> None:
    if exc is not None or app.builder.format != "html":
        return
    bad = {}
    for page in Path(app.outdir).rglob("*.html"):
        found = remote_resources(page.read_text(errors="replace"))
        if found:
            bad[str(page.relative_to(app.outdir))] = found
    if bad:
        first = next(iter(bad.items()))
        raise RuntimeError(f"built docs load remote resources ({len(bad)} pages; e.g. {first[0]}: {first[1][:3]}); "
                           f"the docs must work offline: bundle the resource instead")


def setup(app: Any) -> dict[str, Any]:
    """Register the generator and the offline check with Sphinx."""
    app.connect("builder-inited", _generate)
    app.connect("build-finished", _check_offline)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
