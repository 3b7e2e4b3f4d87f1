"""Quick modes and ``kofn matmul --plan`` write where git ignores them, never over results/."""

import subprocess
from pathlib import Path

from benchmarks._common import RESULTS, results_dir, write_results
from worker.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _ignored(path: Path) -> bool:
    return subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)]).returncode == 0


def test_quick_results_go_to_an_ignored_folder():
    assert results_dir("training") == RESULTS / "training"
    quick = results_dir("training", quick=True)
    assert quick != RESULTS / "training" and _ignored(quick / "training.json")
    assert not _ignored(RESULTS / "training" / "training.json")


def test_write_results_quick_leaves_the_reference_alone():
    ref = RESULTS / "encryption" / "encryption.md"
    before = ref.read_bytes() if ref.exists() else None
    folder = write_results("kofn-test-quick", {"x": 1}, "# x", quick=True)
    try:
        assert (folder / "kofn-test-quick.md").read_text() == "# x\n" and _ignored(folder)
        assert (ref.read_bytes() if ref.exists() else None) == before
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


def test_matmul_plan_default_out_is_ignored():
    args = build_parser().parse_args(["matmul", "--plan", "igp"])
    assert _ignored(ROOT / args.out / "plan.md")
