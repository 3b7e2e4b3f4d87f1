"""What a training run would cost on AWS: Lambda, S3 requests, and an EC2 baseline.

The estimate follows the cost table of the serverless coded-computing papers (Lambda
GB-seconds at the configured memory size), and adds what they left out: the S3 request
charges of the exchange (every shard is a PUT and a GET, every poll a LIST) and Lambda's
ephemeral storage above the free 512 MB. The baseline is the same job on ``n`` on-demand
EC2 instances for its wall-clock time.

Lambda bills an invocation's whole duration, including the time a worker spends waiting
for stragglers, so the GB-seconds come from each worker's wall time, not its compute time.

Prices live in ``worker/data/prices.toml`` with their source URL and date; they must be
checked against AWS before a figure is quoted.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coding.validate import check_int, check_real
from worker.config import ConfigError

__all__ = ["PRICES_PATH", "CostLine", "CostTable", "Prices", "Usage", "estimate_cost", "job_cost",
           "load_prices"]

#: The bundled price file.
PRICES_PATH = Path(__file__).with_name("data") / "prices.toml"


@dataclass(frozen=True)
class Prices:
    """AWS list prices in USD, with where and when they were taken.

    Parameters
    ----------
    lambda_gb_second, lambda_request, lambda_ephemeral_gb_second : float
        Lambda duration price per GB-second, price per invocation, and ephemeral storage
        price per GB-second above ``lambda_ephemeral_free_mb``.
    lambda_ephemeral_free_mb : int
        Ephemeral storage included at no charge.
    s3_put_per_1000, s3_get_per_1000, s3_list_per_1000 : float
        S3 Standard request prices per 1,000 requests.
    ec2_hourly : dict of str to float
        On-demand price per instance-hour by instance type.
    sources : dict of str to str
        Source URL of each section (``lambda``, ``s3``, ``ec2``).
    as_of : str
        The date the prices were taken.
    region : str
        The AWS region they apply to.
    """

    lambda_gb_second: float
    lambda_request: float
    lambda_ephemeral_gb_second: float
    lambda_ephemeral_free_mb: int
    s3_put_per_1000: float
    s3_get_per_1000: float
    s3_list_per_1000: float
    ec2_hourly: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    as_of: str = ""
    region: str = "us-east-1"


def load_prices(path: str | Path | None = None) -> Prices:
    """Read a price file (default: the bundled ``worker/data/prices.toml``).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ConfigError
        A section or price is missing or not a non-negative number.
    """
    path = Path(PRICES_PATH if path is None else path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"Price file {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"Price file {str(path)!r} is not valid TOML: {err}.") from None
    lam, s3, ec2 = (_section(data, name, path) for name in ("lambda", "s3", "ec2"))
    hourly = ec2.get("hourly")
    if not isinstance(hourly, dict) or not hourly:
        raise ConfigError(f"Price file {str(path)!r} needs a non-empty [ec2.hourly] table.")
    return Prices(
        lambda_gb_second=_price(lam, "gb_second", path),
        lambda_request=_price(lam, "request", path),
        lambda_ephemeral_gb_second=_price(lam, "ephemeral_gb_second", path),
        lambda_ephemeral_free_mb=int(_price(lam, "ephemeral_free_mb", path)),
        s3_put_per_1000=_price(s3, "put_per_1000", path),
        s3_get_per_1000=_price(s3, "get_per_1000", path),
        s3_list_per_1000=_price(s3, "list_per_1000", path),
        ec2_hourly={str(k): _price(hourly, k, path) for k in hourly},
        sources={name: str(sec.get("source", "")) for name, sec in
                 (("lambda", lam), ("s3", s3), ("ec2", ec2))},
        as_of=str(data.get("as_of", "")),
        region=str(data.get("region", "us-east-1")),
    )


def _section(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    sec = data.get(name)
    if not isinstance(sec, dict):
        raise ConfigError(f"Price file {str(path)!r} has no [{name}] section.")
    return sec


def _price(sec: dict[str, Any], key: str, path: Path) -> float:
    value = sec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"Price file {str(path)!r} needs a non-negative number for {key!r}, not {value!r}.")
    return float(value)


@dataclass(frozen=True)
class Usage:
    """What a run used, measured by the runtime.

    Parameters
    ----------
    worker_seconds : float
        Sum over workers (and restarts) of each invocation's wall-clock seconds.
    invocations : int
        Worker invocations, restarts included.
    puts, gets, lists : int
        Store requests of every worker and the trigger.
    wall_seconds : float
        The job's wall-clock time, for the EC2 baseline.
    workers : int
        Number of workers ``n`` (EC2 instances of the baseline).
    """

    worker_seconds: float
    invocations: int
    puts: int
    gets: int
    lists: int
    wall_seconds: float
    workers: int

    def __post_init__(self) -> None:
        check_real("worker_seconds", self.worker_seconds, low=0.0)
        check_real("wall_seconds", self.wall_seconds, low=0.0)
        for name in ("invocations", "puts", "gets", "lists"):
            check_int(name, getattr(self, name), low=0)
        check_int("workers", self.workers, low=1)


@dataclass(frozen=True)
class CostLine:
    """One row of the cost table."""

    item: str
    quantity: float
    unit: str
    unit_price: float
    cost: float


@dataclass(frozen=True)
class CostTable:
    """The serverless cost lines, their total, and the EC2 baseline.

    Attributes
    ----------
    lines : tuple of CostLine
        Lambda duration, requests and ephemeral storage; S3 PUT, GET and LIST.
    serverless_total : float
        Sum of ``lines``.
    ec2 : CostLine
        The baseline: ``n`` instances for the job's wall time.
    prices : Prices
        The prices used.
    """

    lines: tuple[CostLine, ...]
    serverless_total: float
    ec2: CostLine
    prices: Prices

    def to_markdown(self) -> str:
        """The table as GitHub Markdown, with the price sources and their date."""
        rows = ["| item | quantity | unit | unit price (USD) | cost (USD) |",
                "|---|---:|---|---:|---:|"]
        for ln in self.lines:
            rows.append(f"| {ln.item} | {ln.quantity:,.4g} | {ln.unit} | {ln.unit_price:.4g} | "
                        f"{ln.cost:.6f} |")
        rows.append(f"| **serverless total** | | | | **{self.serverless_total:.6f}** |")
        e = self.ec2
        rows.append(f"| {e.item} | {e.quantity:,.4g} | {e.unit} | {e.unit_price:.4g} | {e.cost:.6f} |")
        src = ", ".join(f"{k}: <{v}>" for k, v in self.prices.sources.items() if v)
        rows.append("")
        rows.append(f"Prices for {self.prices.region} as of {self.prices.as_of} ({src}). "
                    "They must be checked against AWS before quoting.")
        return "\n".join(rows)


def estimate_cost(
    usage: Usage,
    prices: Prices,
    *,
    memory_mb: int,
    ephemeral_mb: int = 512,
    ec2_instance: str = "c5.2xlarge",
) -> CostTable:
    """Price a run's usage.

    Parameters
    ----------
    usage : Usage
        What the run used.
    prices : Prices
        List prices (:func:`load_prices`).
    memory_mb : int
        Lambda memory size; GB-seconds are ``worker_seconds * memory_mb / 1024``.
    ephemeral_mb : int
        Lambda ephemeral storage; only the part above the free allowance is charged.
    ec2_instance : str
        Instance type of the baseline, a key of ``prices.ec2_hourly``.

    Returns
    -------
    CostTable
    """
    if not isinstance(usage, Usage):
        raise TypeError(f"Argument 'usage' must be a Usage, not {type(usage).__name__}.")
    memory_mb = check_int("memory_mb", memory_mb, low=128, high=10240)
    ephemeral_mb = check_int("ephemeral_mb", ephemeral_mb, low=512, high=10240)
    if ec2_instance not in prices.ec2_hourly:
        raise ConfigError(f"Argument 'ec2_instance' must be one of "
                          f"{', '.join(sorted(prices.ec2_hourly))}, not {ec2_instance!r}.")
    gb_s = usage.worker_seconds * memory_mb / 1024
    extra_gb = max(ephemeral_mb - prices.lambda_ephemeral_free_mb, 0) / 1024
    eph_gb_s = usage.worker_seconds * extra_gb
    lines = (
        _line(f"Lambda duration ({memory_mb} MB)", gb_s, "GB-s", prices.lambda_gb_second),
        _line("Lambda requests", usage.invocations, "requests", prices.lambda_request),
        _line(f"Lambda ephemeral storage ({ephemeral_mb} MB)", eph_gb_s, "GB-s",
              prices.lambda_ephemeral_gb_second),
        _line("S3 PUT", usage.puts, "requests", prices.s3_put_per_1000 / 1000),
        _line("S3 GET", usage.gets, "requests", prices.s3_get_per_1000 / 1000),
        _line("S3 LIST", usage.lists, "requests", prices.s3_list_per_1000 / 1000),
    )
    hours = usage.workers * usage.wall_seconds / 3600
    ec2 = _line(f"EC2 baseline ({usage.workers} x {ec2_instance}, on demand)", hours,
                "instance-h", prices.ec2_hourly[ec2_instance])
    return CostTable(lines, sum(ln.cost for ln in lines), ec2, prices)


def job_cost(cfg: Any, store: Any, own: Any, wall_s: float) -> CostTable:
    """The cost table of a finished job from its workers' session records in the store.

    ``own`` holds the caller's (the trigger's) request counts (``puts``, ``gets``,
    ``lists``); unreadable session records are skipped.
    """
    import json

    sessions = []
    for key in store.list(f"{cfg.job}/sessions/"):
        try:
            sessions.append(json.loads(store.get(key)))
        except (FileNotFoundError, ValueError):
            continue
    usage = Usage(
        worker_seconds=sum(float(s.get("wall_s", 0.0)) for s in sessions),
        invocations=len(sessions),
        puts=own.puts + sum(int(s.get("puts", 0)) for s in sessions),
        gets=own.gets + sum(int(s.get("gets", 0)) for s in sessions),
        lists=own.lists + sum(int(s.get("lists", 0)) for s in sessions),
        wall_seconds=wall_s, workers=cfg.workers)
    return estimate_cost(usage, load_prices(), memory_mb=cfg.lambda_memory_mb,
                         ephemeral_mb=cfg.lambda_ephemeral_mb, ec2_instance=cfg.ec2_instance)


def _line(item: str, quantity: float, unit: str, unit_price: float) -> CostLine:
    return CostLine(item, float(quantity), unit, float(unit_price), float(quantity) * float(unit_price))
