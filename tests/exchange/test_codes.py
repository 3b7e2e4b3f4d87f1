"""Exchange codes as objects: the registry, a code registered from this file alone, and
float32 on the wire for the sliced codes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from coding.validate import check_int
from exchange import LocalStore, RoundConfig
from exchange.codes import (
    CODES,
    Code,
    code_class,
    code_from_json,
    code_names,
    make_code,
    register_code,
)
from exchange.codes.base import as_rows, check_indices, check_update, rows
from exchange.stores.counting import CountingStore
from tests.exchange.test_round import _run


@dataclass(frozen=True)
class Repetition(Code):
    """Every aggregator gets the whole update (n-fold repetition): any one merged shard decodes."""

    name = "repetition"
    n: int
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", check_int("n", self.n, low=1))

    @property
    def merged_needed(self) -> int:
        return 1

    def share_length(self, length: int) -> int:
        return length

    def encode(self, update, *, rng=None, out=None):
        x = check_update(update) * self.scale
        return rows(np.tile(x, self.n), self.n)

    def decode(self, merged, indices, *, length, n_terms):
        idx = check_indices(indices, self.n, "indices")
        got = as_rows(merged, len(idx))
        return np.asarray(got[0], dtype=np.float64)[:length] / self.scale


@pytest.fixture
def repetition():
    register_code("repetition", Repetition)
    yield Repetition
    CODES.pop("repetition", None)


def test_a_code_registered_here_runs_a_round(tmp_path, repetition):
    code = Code("repetition", 4, scale=2.0)  # by name, through the registry
    assert isinstance(code, Repetition) and "repetition" in code_names()
    assert code_from_json(code.to_json()) == code
    ups = np.random.default_rng(0).normal(size=(4, 37))
    results, errors = _run(LocalStore(tmp_path), RoundConfig(job="rep", code=code), ups)
    assert not errors
    for res in results.values():
        np.testing.assert_allclose(res.total, ups.sum(0), rtol=1e-12)
        assert res.n_terms == 4 and len(res.aggregators) >= 1


def test_registry_is_lazy_and_refuses_bad_entries():
    assert code_class("mds").__name__ == "MDS"
    with pytest.raises(ValueError, match="Argument 'mode' must be one of"):
        make_code("raid6", 4)
    with pytest.raises(ValueError, match="'module:Class'"):
        register_code("x", "no_colon")
    with pytest.raises(ValueError, match="already registered"):
        register_code("mds", "somewhere:Else")
    register_code("ghost", "kofn_no_such_module:Code")
    try:
        with pytest.raises(ImportError, match="needs module 'kofn_no_such_module'.*install"):
            code_class("ghost")
    finally:
        CODES.pop("ghost")


def test_builtin_header_record_keeps_its_v1_shape():
    # every built-in writes the parameter record one CodeSpec class used to write
    v1 = {"mode", "n", "k", "s", "t", "p", "frac_bits", "int_bits", "limb_bits", "seed"}
    for code in (make_code("plain", 5), make_code("mds", 5, k=3), make_code("backup", 5, s=1),
                 make_code("gradient", 5, s=1), make_code("gradient+mds", 5, k=3, s=1)):
        assert set(code.to_json()) == v1
        assert code_from_json(code.to_json()) == code
    assert set(make_code("secure", 5, k=3, t=1).to_json()) == v1 | {"layout"}


@pytest.mark.parametrize("mode, kw", [("plain", {}), ("backup", {"s": 1}), ("gradient", {"s": 1})])
def test_float32_stays_float32_on_the_wire_for_sliced_codes(tmp_path, mode, kw):
    n, length = 4, 4000
    code = make_code(mode, n, **kw)
    partials = np.random.default_rng(1).normal(size=(n, length))
    # what worker i publishes: its code's combination of its partitions' partials
    ups = np.stack([sum(c * partials[p] for c, p in zip(code.coefficients(i), code.partitions(i), strict=True))
                    for i in range(n)]).astype(np.float32)
    sent = {}
    for dtype in (np.float64, np.float32):
        store = CountingStore(LocalStore(tmp_path / np.dtype(dtype).name))
        results, errors = _run(store, RoundConfig(job="f32", code=code), ups.astype(dtype))
        assert not errors
        res = results[0]
        # the slices are exact; the float32 merged sum rounds once (and the gradient
        # decoder weights scale the float32 rounding of the combinations)
        want = ups.astype(np.float64)[list(res.contributors)].sum(0) if code.needs_consensus \
            else partials.sum(0)
        np.testing.assert_allclose(res.total, want, rtol=1e-4, atol=1e-4)
        sent[dtype] = store.stats.bytes_up
    # payloads halve; headers (a few hundred bytes an object) do not
    assert sent[np.float32] < 0.6 * sent[np.float64]
