"""One run, side by side: a worker's secure publish compute before this session (a088c58:
``encode_update`` into an array, then ``pack_shard`` per share) and now (``ShardWriter``
payloads filled by ``encode_update(out=...)``, then ``finish``), and ``decode_aggregate``
before and now. Best of 5 alternating runs each.

    python scripts/bench_secure_codec.py
"""

import subprocess
import sys
import time
import types

import numpy as np

from exchange.reduce import CodeSpec, decode_aggregate, encode_update
from exchange.shards import ShardHeader, ShardWriter, pack_shard

BEFORE = "a088c58"


def _old_reduce() -> types.ModuleType:
    src = subprocess.run(["git", "show", f"{BEFORE}:exchange/reduce.py"], capture_output=True,
                         text=True, check=True).stdout
    mod = types.ModuleType("reduce_old")
    sys.modules["reduce_old"] = mod
    exec(compile(src, "reduce_old", "exec"), mod.__dict__)  # noqa: S102 - our own source
    return mod


def main() -> None:
    old = _old_reduce()
    spec, ospec = CodeSpec("secure", 6, k=3, t=1), old.CodeSpec("secure", 6, k=3, t=1)
    hdr = ShardHeader(kind="contrib", job="j", round=0, worker=0, contributors=(0,),
                      code=spec.to_json())

    def before(x):
        shares = old.encode_update(x, ospec)
        return [pack_shard(hdr, shares[j]) for j in range(6)]

    def after(x):
        writers = [ShardWriter(hdr, "<u4", (spec.share_length(x.size),)) for _ in range(6)]
        encode_update(x, spec, out=[w.payload for w in writers])
        return [w.finish() for w in writers]

    for mb in (10, 100):
        x = np.random.default_rng(1).normal(size=int(mb * 1e6 / 8))
        ro = list(old.encode_update(x, ospec)[:4])
        rn = list(encode_update(x, spec)[:4])
        cases = {
            "encode+pack before": lambda x=x: before(x),
            "encode+pack now": lambda x=x: after(x),
            "decode before": lambda x=x, ro=ro: old.decode_aggregate(ro, [0, 1, 2, 3], ospec,
                                                                     length=x.size, n_terms=1),
            "decode now": lambda x=x, rn=rn: decode_aggregate(rn, [0, 1, 2, 3], spec,
                                                              length=x.size, n_terms=1),
        }
        best: dict[str, float] = {}
        for _ in range(5):
            for name, fn in cases.items():
                t = time.perf_counter()
                fn()
                best[name] = min(best.get(name, 9e9), time.perf_counter() - t)
        b, a = best["encode+pack before"], best["encode+pack now"]
        db, dn = best["decode before"], best["decode now"]
        print(f"{mb} MB: encode+pack {b * 1e3:.0f} -> {a * 1e3:.0f} ms ({b / a:.2f}x); "
              f"decode {db * 1e3:.0f} -> {dn * 1e3:.0f} ms ({db / dn:.2f}x)")


if __name__ == "__main__":
    main()
