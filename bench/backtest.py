"""Benchmark: the backtest engine beside vectorbt, same data and same strategies, in one run.

1. SMA crossover: 500 distinct (fast, slow) pairs over one year of 1-minute bars (525,600) of
   one symbol, a seeded geometric random walk; fee 0.1%, all equity per buy, signals on the
   close filled at the next open. MasterTrade's engine and vectorbt (in its own venv,
   .tools/vectorbt-venv, created with pip when missing) each run in their own subprocess,
   after a small untimed warm-up that compiles their numba code. Reported: wall time of the
   timed part, its CPU time (all threads: a fairer figure when other work shares the cores),
   peak RSS (VmHWM, whole process), bar-strategies per second; then the results are
   checked equal: trade counts exactly, final equity within 1e-6 relative.
   vectorbt runs in chunks of --vectorbt-chunk strategies (default 50): all 500 at once needs
   about 16 GB (DESIGN.md §8), more than a shared machine should give; chunking LOWERS its
   peak memory and barely changes its time.
2. Daily run: 500 mixed candidates from the seeded generator over the same year, walk-forward
   ranked (4-week fit, 1-week test windows), Decimal records of the top 10. No DB.

    .venv/bin/python bench/backtest.py [--bars 525600] [--strategies 500] [--vectorbt-chunk 50]
                                       [--skip-vectorbt]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mastertrade.strategy.domain.engine import BacktestConfig, build_bars, run_backtests
from mastertrade.strategy.domain.families import SmaCross
from mastertrade.strategy.domain.generator import generate_candidates
from mastertrade.strategy.domain.metrics import build_result, final_equity, trade_counts
from mastertrade.strategy.domain.walkforward import WalkForward, rank

ROOT = Path(__file__).resolve().parents[1]
VBT_VENV = ROOT / ".tools" / "vectorbt-venv"
FEE = 0.001
SEED = 20_260_101
WEEK = 7 * 24 * 60


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_inputs(folder: Path, n_bars: int, n_strategies: int) -> None:
    """Seeded prices (~BTC-like 1-minute volatility) and distinct SMA window pairs."""
    rng = np.random.default_rng(SEED)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0007, n_bars)))
    open_ = np.concatenate(([30_000.0], close[:-1])) * np.exp(rng.normal(0.0, 0.0001, n_bars))
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < n_strategies:
        fast = int(rng.integers(5, 121))
        pairs.add((fast, int(rng.integers(fast + 10, 1441))))
    np.save(folder / "open.npy", open_)
    np.save(folder / "close.npy", close)
    np.save(folder / "windows.npy", np.array(sorted(pairs), dtype=np.int64))


def engine_worker(folder: Path) -> dict[str, float]:
    """MasterTrade's side of the SMA comparison (runs in its own process)."""
    bars = build_bars(np.load(folder / "open.npy"), np.load(folder / "close.npy"))
    strategies = [SmaCross(fast=int(f), slow=int(s)) for f, s in np.load(folder / "windows.npy")]
    config = BacktestConfig()
    warm = build_bars(bars.open[:2000], bars.close[:2000])
    run_backtests(warm, strategies[:2], config)
    started, cpu = time.perf_counter(), cpu_seconds()
    run = run_backtests(bars, strategies, config)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    np.save(folder / "engine_final.npy", final_equity(run))
    np.save(folder / "engine_trades.npy", trade_counts(run))
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak_rss_mib()}


def daily_worker(folder: Path, n_strategies: int) -> dict[str, float]:
    """500 mixed candidates, walk-forward ranking, top-10 records (runs in its own process)."""
    bars = build_bars(np.load(folder / "open.npy"), np.load(folder / "close.npy"))
    walk = WalkForward(fit_bars=4 * WEEK, test_bars=WEEK, min_trades=10)
    config = BacktestConfig()
    warm = build_bars(bars.open[:5 * WEEK + 10], bars.close[:5 * WEEK + 10])  # fmt: skip
    warm_run = run_backtests(warm, generate_candidates(16, seed=1), config, walk.edges(len(warm)))
    rank(warm_run, walk)
    started, cpu = time.perf_counter(), cpu_seconds()
    candidates = generate_candidates(n_strategies, seed=SEED)
    run = run_backtests(bars, candidates, config, walk.edges(len(bars)))
    ranked = rank(run, walk)
    records = [build_result(run, r.index) for r in ranked[:10]]
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    best = candidates[ranked[0].index].label() if ranked else "none"
    return {
        "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak_rss_mib(), "ranked": len(ranked),
        "kept": len(records), "best": best,  # type: ignore[dict-item]
    }  # fmt: skip


def run_worker(python: Path, args: list[str]) -> dict[str, Any]:
    done = subprocess.run([str(python), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ensure_vectorbt() -> Path:
    python = VBT_VENV / "bin" / "python"
    if not python.exists():
        print("creating .tools/vectorbt-venv (pip install vectorbt, a few minutes)...")
        subprocess.run([sys.executable, "-m", "venv", str(VBT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "vectorbt"], check=True)
    return python


def compare(folder: Path) -> tuple[int, int, float]:
    """(trade-count mismatches, final-equity mismatches, worst relative equity difference)."""
    ours, theirs = np.load(folder / "engine_final.npy"), np.load(folder / "vectorbt_final.npy")
    trades_ok = np.load(folder / "engine_trades.npy") == np.load(folder / "vectorbt_trades.npy")
    relative = np.abs(ours - theirs) / np.abs(theirs)
    return int((~trades_ok).sum()), int((relative > 1e-6).sum()), float(relative.max())


def report(
    name: str, result: dict[str, Any], work: float, reference: dict[str, Any] | None
) -> None:
    """One table line; the ratios are the reference's wall (CPU) time over this line's."""
    wall, cpu = result["wall_s"], result["cpu_s"]
    ratios = (
        f"{reference['wall_s'] / wall:>8.1f}x{reference['cpu_s'] / cpu:>8.1f}x"
        if reference
        else f"{'-':>9}{'-':>9}"
    )
    print(
        f"{name:<24}{wall:>8.2f}{cpu:>8.2f}{result['peak_rss_mib']:>10.0f}"
        f"{work / wall:>12.3g}{ratios}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=525_600)
    parser.add_argument("--strategies", type=int, default=500)
    parser.add_argument("--vectorbt-chunk", type=int, default=50)
    parser.add_argument("--skip-vectorbt", action="store_true")
    options = parser.parse_args()
    me = Path(__file__).resolve()
    with tempfile.TemporaryDirectory(prefix="mt-bench-") as tmp:
        folder = Path(tmp)
        write_inputs(folder, options.bars, options.strategies)
        engine = run_worker(Path(sys.executable), [str(me), "--worker", "engine", str(folder)])
        vbt = None
        if not options.skip_vectorbt:
            worker = str(me.parent / "vectorbt_worker.py")
            args = [worker, str(folder), str(options.vectorbt_chunk), str(FEE)]
            vbt = run_worker(ensure_vectorbt(), args)
        daily = run_worker(
            Path(sys.executable),
            [str(me), "--worker", "daily", str(folder), str(options.strategies)],
        )
        work = float(options.bars * options.strategies)
        print(f"{options.strategies} strategies x {options.bars} bars, {os.cpu_count()} CPUs")
        print(f"{'case':<24}{'wall s':>8}{'CPU s':>8}{'peak MiB':>10}{'bar-strat/s':>12}"
              f"{'wall x':>9}{'CPU x':>9}")  # fmt: skip
        if vbt:
            report("vectorbt (SMA)", vbt, work, None)
        report("mastertrade (SMA)", engine, work, vbt)
        report("mastertrade daily run", daily, work, None)
        print(
            f"daily run: {daily['ranked']} ranked, top {daily['kept']} kept, best {daily['best']}"
        )
        if vbt:
            trades, finals, worst = compare(folder)
            print(f"vs vectorbt: {trades} trade-count and {finals} final-equity mismatches "
                  f"(tolerance 1e-6 relative), worst relative difference {worst:.2e}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        folder = Path(sys.argv[3])
        if sys.argv[2] == "engine":
            print(json.dumps(engine_worker(folder)))
        else:
            print(json.dumps(daily_worker(folder, int(sys.argv[4]))))
    else:
        main()
