"""Cost model: the bundled prices load, and known usage gives hand-computed charges."""

from __future__ import annotations

import pytest

from worker.config import ConfigError
from worker.cost import Usage, estimate_cost, load_prices


def test_bundled_prices_have_sources_and_date():
    prices = load_prices()
    assert prices.as_of
    assert set(prices.sources) == {"lambda", "s3", "ec2"}
    assert all(url.startswith("https://aws.amazon.com/") for url in prices.sources.values())
    assert prices.lambda_gb_second > 0 and prices.s3_put_per_1000 > prices.s3_get_per_1000


def test_known_answer():
    # Prepare: 100 worker-seconds at 2048 MB, 1024 MB ephemeral, 2000 PUT, 5000 GET, 300 LIST.
    prices = load_prices()
    usage = Usage(worker_seconds=100.0, invocations=10, puts=2000, gets=5000, lists=300,
                  wall_seconds=3600.0, workers=5)
    # Execute
    table = estimate_cost(usage, prices, memory_mb=2048, ephemeral_mb=1024, ec2_instance="c5.xlarge")
    # Assert
    cost = {ln.unit + ln.item.split()[1]: ln.cost for ln in table.lines}
    assert cost["GB-sduration"] == pytest.approx(200.0 * prices.lambda_gb_second)
    assert cost["GB-sephemeral"] == pytest.approx(50.0 * prices.lambda_ephemeral_gb_second)
    assert cost["requestsPUT"] == pytest.approx(2 * prices.s3_put_per_1000)
    assert cost["requestsGET"] == pytest.approx(5 * prices.s3_get_per_1000)
    assert cost["requestsLIST"] == pytest.approx(0.3 * prices.s3_list_per_1000)
    assert table.serverless_total == pytest.approx(sum(ln.cost for ln in table.lines))
    assert table.ec2.quantity == pytest.approx(5.0)
    assert table.ec2.cost == pytest.approx(5 * prices.ec2_hourly["c5.xlarge"])
    md = table.to_markdown()
    assert "S3 LIST" in md and prices.as_of in md and "checked" in md


def test_free_ephemeral_is_not_charged():
    usage = Usage(10.0, 1, 0, 0, 0, 10.0, 1)
    table = estimate_cost(usage, load_prices(), memory_mb=1024, ephemeral_mb=512)
    assert [ln.cost for ln in table.lines if "ephemeral" in ln.item] == [0.0]


def test_bad_arguments():
    usage = Usage(1.0, 1, 0, 0, 0, 1.0, 1)
    with pytest.raises(ConfigError, match="ec2_instance"):
        estimate_cost(usage, load_prices(), memory_mb=1024, ec2_instance="x9.huge")
    with pytest.raises(ValueError, match="memory_mb"):
        estimate_cost(usage, load_prices(), memory_mb=64)
    with pytest.raises(ValueError, match="puts"):
        Usage(1.0, 1, -1, 0, 0, 1.0, 1)


def test_bad_price_file(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text("[lambda]\ngb_second = -1\n")
    with pytest.raises(ConfigError):
        load_prices(bad)
    with pytest.raises(FileNotFoundError):
        load_prices(tmp_path / "missing.toml")
