"""Plugin registries: errors list known names; entry points are discovered."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from vcompute.core.registry import Registry, UnknownPluginError


def test_unknown_name_lists_known():
    reg = Registry("widget", group=None)
    reg.register("b", 1)
    reg.register("a", 2)
    with pytest.raises(UnknownPluginError, match="unknown widget 'c'; known widgets: a, b"):
        reg.get("c")


def test_duplicate_registration_refused_unless_replace():
    reg = Registry("widget", group=None)
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
    reg.register("a", 2, replace=True)
    assert reg.get("a") == 2


def test_lazy_path_is_imported_on_get():
    reg = Registry("widget", group=None)
    reg.register("freivalds", "vcompute.verify.freivalds:Freivalds")
    from vcompute.verify.freivalds import Freivalds

    assert reg.get("freivalds") is Freivalds
    reg.register("broken", "no_such_module_xyz:thing")
    with pytest.raises(ImportError, match="could not be loaded"):
        reg.get("broken")


def _install_fake_distribution(tmp_path, group: str, name: str, target: str) -> None:
    """Write a plugin package and its .dist-info onto sys.path: what `pip install` would leave."""
    pkg = tmp_path / "vc_plugin_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from vcompute.core import Verdict

        class AlwaysReject:
            """A toy third-party verifier that rejects everything."""
            name = "always-reject"
            def replicas(self, job): return 1
            def evidence(self, job):
                from vcompute.core import EvidenceSpec
                return EvidenceSpec()
            def verify(self, job, claims, ctx):
                return Verdict.reject("third-party plugin says no", scheme=self.name)

        def sabotage(job, rng):
            return job.inputs["a"] @ job.inputs["b"] * 2
    '''))
    dist = tmp_path / "vc_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vc-plugin-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")


def test_third_party_verifier_through_entry_point(tmp_path, monkeypatch):
    _install_fake_distribution(tmp_path, "vcompute.verifiers", "always-reject", "vc_plugin_demo:AlwaysReject")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    from vcompute.verify import VERIFIERS, VerifyContext
    from vcompute.workloads import execute, make_matmul_job

    fresh = Registry("verifier", group="vcompute.verifiers")  # same path as VERIFIERS, fresh scan
    assert "always-reject" in fresh.names()
    v = fresh.create("always-reject")
    job = make_matmul_job(4, seed=0)
    import numpy as np

    claim = execute(job, "honest", rng=np.random.default_rng(0))
    assert v.verify(job, [claim], VerifyContext(seed=0)).reason == "third-party plugin says no"
    assert "freivalds" in VERIFIERS.names()
    sys.modules.pop("vc_plugin_demo", None)


def test_third_party_behaviour_through_entry_point(tmp_path, monkeypatch):
    _install_fake_distribution(tmp_path, "vcompute.behaviours", "sabotage", "vc_plugin_demo:sabotage")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    import numpy as np

    from vcompute.verify import Freivalds, VerifyContext
    from vcompute.workloads import behaviours as bh
    from vcompute.workloads import make_matmul_job

    monkeypatch.setattr(bh, "BEHAVIOURS", Registry("behaviour", group="vcompute.behaviours"))
    for name, fn in [("honest", bh.honest)]:
        bh.BEHAVIOURS.register(name, fn)
    job = make_matmul_job(16, seed=1)
    claim = bh.execute(job, "sabotage", rng=np.random.default_rng(0))
    assert not Freivalds().verify(job, [claim], VerifyContext(seed=1)).accepted
    sys.modules.pop("vc_plugin_demo", None)
