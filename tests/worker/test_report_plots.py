"""The round-time plot's stacked phases add up to each round's time; AP per round plots."""

import matplotlib

matplotlib.use("Agg")

import pytest

from worker.report import PHASES, plot_ap, plot_breakdown, stacked_phases, summarize_rounds


def _records():
    # Round 2's transfer phases overlap (the aggregation duty runs beside collect), so
    # its measured phases add up to more than its wall time.
    base = {"contributors": [0, 1], "aggregators": [0, 1], "loss": 1.0}
    return [
        {**base, "worker": 0, "round": 1, "compute_s": 1.0, "upload_s": 0.2, "wait_s": 0.3,
         "download_s": 0.1, "decode_s": 0.1, "wall_s": 2.0},
        {**base, "worker": 0, "round": 2, "compute_s": 1.0, "upload_s": 0.8, "wait_s": 0.9,
         "download_s": 0.6, "decode_s": 0.2, "wall_s": 2.5},
    ]


def test_stacked_phases_add_up_to_the_round_time():
    rows = summarize_rounds(_records())
    assert sum(rows[1].phases.values()) > rows[1].time_s  # what the plot used to stack
    for row in rows:
        stack = stacked_phases(row)
        assert set(stack) == set(PHASES)
        assert sum(stack.values()) == pytest.approx(row.time_s)
    assert stacked_phases(rows[0]) == pytest.approx(rows[0].phases)  # no overlap: unchanged


def test_round_time_plot_bars_sum_to_round_time_with_legend_outside(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    rows = summarize_rounds(_records())
    seen = {}
    real_savefig = plt.Figure.savefig

    def capture(fig, *args, **kwargs):
        ax = fig.axes[0]
        heights = {}
        for patch in ax.patches:
            x = round(patch.get_x() + patch.get_width() / 2)
            heights[x] = heights.get(x, 0.0) + patch.get_height()
        seen["heights"] = heights
        fig.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        seen["legend_outside"] = legend.x0 >= ax.get_window_extent().x1
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", capture)
    plot_breakdown(rows, tmp_path / "round_time.png")
    assert (tmp_path / "round_time.png").stat().st_size > 0
    for row in rows:
        assert seen["heights"][row.round] == pytest.approx(row.time_s)
    assert seen["legend_outside"]


def test_ap_plot(tmp_path):
    plot_ap([(0, 0.0), (1, 0.1), (2, 0.25)], tmp_path / "ap.png")
    assert (tmp_path / "ap.png").stat().st_size > 0
