"""``python -m benchmarks.paper --quick`` end to end: every figure, table and comparison."""

import json

from benchmarks.paper.__main__ import main
from benchmarks.paper.settings import PaperSettings, quick_settings


def test_quick_lists_every_shrunk_setting():
    st = quick_settings(PaperSettings())
    changed = {note.split(":")[0] for note in st.shrunk}
    assert {"models", "workers", "epochs", "images", "fig4_batches"} <= changed
    assert all("full run:" in note for note in st.shrunk)
    real = quick_settings(PaperSettings(data="somewhere"))
    assert "images" not in {note.split(":")[0] for note in real.shrunk}


def test_quick_run_writes_the_figures_and_tables(tmp_path):
    assert main(["--quick", "--no-coded", "--out", str(tmp_path)]) == 0
    for name in ("fig3a.png", "fig3b.png", "fig3c.png", "fig4.png", "paper.md", "paper.json"):
        assert (tmp_path / name).stat().st_size > 0
    md = (tmp_path / "paper.md").read_text()
    for part in ("Fig 3", "Table 1", "t3.xlarge", "Fig 4", "Quick mode shrank", "AP random init"):
        assert part in md
    data = json.loads((tmp_path / "paper.json").read_text())
    st = data["settings"]
    fleets = data["fleets"]
    assert len(fleets) == len(st["models"]) * (len(st["workers"]) + 1)
    for run in fleets:
        assert len(run["epoch_loss"]) == st["epochs"] and len(run["peak_mb"]) == run["workers"]
        assert run["total_s"] >= run["train_s"] > 0
    assert [r["batch_size"] for r in data["fig4"]] == st["fig4_batches"]
    assert all(row["requests"] > 0 and row["s3_requests"] > 0 for row in data["cost"])
    (rand, pre), = data["pretrained"]
    assert not rand["pretrained"] and (pre is None or pre["pretrained"])
