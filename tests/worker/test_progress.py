"""The live view: phase lines round-trip, status lines on change and on a heartbeat."""

import io

from worker.progress import LiveView, parse_phase, phase_line


def test_phase_lines_round_trip():
    line = phase_line(2, 5, "training", step=3, steps=8, detail="loss 1.2345")
    assert line == "round 2/5: training step 3/8 loss 1.2345"
    p = parse_phase(f"worker 1: INFO {line}")
    assert (p.round, p.rounds, p.name, p.step, p.steps) == (2, 5, "training", 3, 8)
    assert parse_phase(phase_line(2, 5, "waiting", detail="for 4 of 5 merged shards")).text() == \
        "r2/5 waiting for 4 of 5 merged shards"
    assert parse_phase("something else") is None


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_status_lines_on_change_heartbeat_and_echoed_warnings(tmp_path):
    out, clock = io.StringIO(), _Clock()
    view = LiveView(2, tmp_path, out=out, tty=False, heartbeat_s=5.0, clock=clock)
    view.poll()
    assert out.getvalue() == ""  # nothing new, no heartbeat due yet
    (tmp_path / "worker-0.log").write_text(phase_line(1, 3, "training", step=1, steps=4) + "\n")
    with open(tmp_path / "worker-1.log", "w") as fh:
        fh.write("worker 1: WARNING round 1 worker 1: own aggregation failed\nhalf a li")
    clock.t = 1.0
    view.poll()
    text = out.getvalue()
    assert "worker 1: worker 1: WARNING round 1 worker 1: own aggregation failed" in text
    assert "w0 r1/3 training 1/4 | w1 starting" in text and "half a li" not in text
    before = out.getvalue()
    clock.t = 3.0
    view.poll()
    assert out.getvalue() == before  # unchanged, and under the heartbeat
    clock.t = 6.5
    view.poll()
    assert out.getvalue().count("w0 r1/3 training 1/4") == 2  # the heartbeat repeats it


def test_tty_bars_draw_phases(tmp_path):
    out = io.StringIO()
    view = LiveView(1, tmp_path, out=out, tty=True)
    (tmp_path / "worker-0.log").write_text(phase_line(1, 2, "training", step=2, steps=5) + "\n"
                                           + phase_line(1, 2, "uploading") + "\n")
    view.poll()
    view.write("round 1/2  loss 1.0")
    view.close()
    assert "uploading" in out.getvalue() and "round 1/2  loss 1.0" in out.getvalue()


def test_keepalive_speaks_while_the_driver_works(tmp_path):
    import time

    out = io.StringIO()
    view = LiveView(1, None, out=out, tty=False, heartbeat_s=0.2)
    with view.keepalive("building the model"):
        time.sleep(1.0)  # liveness only: some lines appear, none are asserted on timing
    assert "still building the model" in out.getvalue()
