"""A run you can watch: worker logs hold phase lines, the console's loss is the report's,
the report times start-up and evaluation, and resuming a finished job changes nothing."""

import re

import pytest

pytest.importorskip("torch")

from exchange.stores.local import LocalStore  # noqa: E402
from worker.commands.train import run_job  # noqa: E402
from worker.config import RunConfig  # noqa: E402
from worker.progress import parse_phase  # noqa: E402


@pytest.mark.slow
def test_watchable_run_then_resume_of_the_finished_job_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig(job="watch", store=f"file://{tmp_path / 'store'}", workers=2, mode="mds", k=2,
                    rounds=2, model="small_cnn", min_size=64, max_size=64, image_size=64,
                    synth_images=10, local_iters=2, batch_size=2, encrypt=False, grace=0.3,
                    runs_dir=str(tmp_path / "runs"), launcher="local", max_restarts=0)
    lines: list[str] = []
    result = run_job(cfg, log=lines.append)
    console = {int(m.group(1)): m.group(2) for line in lines
               if (m := re.match(r"round (\d+)/2  loss (\S+)", line))}
    report = (tmp_path / "runs" / "watch" / "report.md").read_text()
    rounds = report.split("## Rounds", 1)[1].split("\n## ", 1)[0]
    table = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (\S+) \|", rounds, re.M)}
    assert console == table and set(console) == {1, 2}
    assert "## Time" in report and "worker start-up" in report and "| evaluation |" in report
    assert any(line.startswith("time: ") and "total" in line for line in lines)
    assert (tmp_path / "runs" / "watch" / "ap.png").is_file()
    for w in range(2):
        log = (tmp_path / "runs" / "watch" / "logs" / f"worker-{w}.log").read_text()
        names = {p.name for p in map(parse_phase, log.splitlines()) if p is not None}
        assert {"starting", "training", "uploading", "waiting", "done"} <= names, log

    store = LocalStore(tmp_path / "store")
    keys = sorted(store.list("watch/"))
    before = (tmp_path / "runs" / "watch" / "report.md").stat()
    again: list[str] = []
    res2 = run_job(RunConfig(job="watch", store=cfg.store, encrypt=False, runs_dir=cfg.runs_dir),
                   resume=True, log=again.append)
    assert any("already finished all 2 rounds" in line for line in again), again
    assert not any(line.startswith("round ") for line in again)
    after = (tmp_path / "runs" / "watch" / "report.md").stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert sorted(store.list("watch/")) == keys and res2.report == result.report
