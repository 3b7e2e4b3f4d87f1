"""Registries: a store scheme or a launcher added from a test file alone, and their errors."""

from __future__ import annotations

import sys

import pytest

from exchange.registry import Registry, load_target
from exchange.stores.memory import MemoryStore
from exchange.stores.url import STORES, open_store


def test_a_store_scheme_registered_here_opens_through_open_store():
    made = []

    def from_url(url: str, **options: object) -> MemoryStore:
        made.append((url, options))
        return MemoryStore("registered-here")

    STORES.register("mine", from_url)
    try:
        store = open_store("mine://anything")
        store.put("k", b"v")
        assert MemoryStore("registered-here").get("k") == b"v"
        assert made == [("mine://anything", {"fsync": False})]
    finally:
        STORES._entries.pop("mine")
        MemoryStore.drop("registered-here")


def test_unknown_names_and_bad_targets_are_one_line():
    reg = Registry("launcher", {"local": "worker.launchers.local:from_config"})
    with pytest.raises(ValueError, match=r"^Argument 'launcher' must be one of local, not 'nope'\.$"):
        reg.load("nope")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("local", "x.y:z")
    with pytest.raises(ValueError, match="must be 'module:attr'"):
        reg.register("other", "no-colon")
    with pytest.raises(ImportError, match="names module 'kofn_no_such_module', which does not exist"):
        load_target("kofn_no_such_module:x", what="The store 'x'")
    with pytest.raises(ImportError, match="has no 'nothing_here'"):
        load_target("exchange.registry:nothing_here", what="The store 'x'")


def test_a_missing_optional_dependency_names_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "kofn_plugin_needing_dep.py").write_text("import kofn_absent_dependency\nx = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as err:
        load_target("kofn_plugin_needing_dep:x", what="The launcher 'fancy'")
    assert str(err.value) == ("The launcher 'fancy' needs the package 'kofn_absent_dependency', which "
                              "is not installed (install it, for example `uv add kofn_absent_dependency`).")
    sys.modules.pop("kofn_plugin_needing_dep", None)


def test_a_launcher_registered_here_is_accepted_by_the_config_and_built():
    from worker.config import ConfigError, RunConfig
    from worker.launchers import make_launcher
    from worker.launchers.local import LocalLauncher
    from worker.plugins import LAUNCHERS

    built = []

    def inline(cfg, *, log_dir=None, verbose=False):
        built.append(cfg.launcher)
        return LocalLauncher(max_restarts=0, log_dir=log_dir)

    with pytest.raises(ConfigError, match="must be one of local, ray, lambda, not 'inline'"):
        RunConfig(launcher="inline")
    LAUNCHERS.register("inline", inline)
    try:
        launcher = make_launcher(RunConfig(launcher="inline"))
        assert isinstance(launcher, LocalLauncher) and built == ["inline"]
    finally:
        LAUNCHERS._entries.pop("inline")


def test_a_memory_store_is_refused_for_kofn_train_in_one_line():
    from worker.config import ConfigError, RunConfig

    with pytest.raises(ConfigError, match="a memory:// store lives in one process"):
        RunConfig(store="memory://x")
    with pytest.raises(ConfigError, match="another registered scheme"):
        RunConfig(store="gs://bucket")
