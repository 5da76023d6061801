"""The vectorbt side of bench/backtest.py, run in vectorbt's own venv (.tools/vectorbt-venv).

Reads the bench's prices and SMA windows from a folder, backtests them as vectorbt users do
(MA.run, crossed_above, Portfolio.from_signals), writes each strategy's final value and trade
count, and prints a JSON line: wall and CPU time of the timed part, peak RSS (VmHWM) of this
process.
Signals are shifted one bar and filled at the open, MasterTrade's convention; all cash per buy
(vectorbt's default size), fee 0.1%, no slippage. Imports nothing from MasterTrade.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import vectorbt as vbt
from vectorbt.generic import nb as generic_nb


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def backtest_chunk(
    open_: pd.Series, close: pd.Series, fast: np.ndarray, slow: np.ndarray, fee: float
) -> tuple[np.ndarray, np.ndarray]:
    fast_ma = vbt.MA.run(close, window=list(fast), short_name="fast").ma.to_numpy()
    slow_ma = vbt.MA.run(close, window=list(slow), short_name="slow").ma.to_numpy()
    entries = generic_nb.crossed_above_nb(fast_ma, slow_ma)
    exits = generic_nb.crossed_above_nb(slow_ma, fast_ma)
    del fast_ma, slow_ma
    # decided on bar t's close, filled at bar t + 1's open
    entries = np.vstack([np.zeros((1, entries.shape[1]), bool), entries[:-1]])
    exits = np.vstack([np.zeros((1, exits.shape[1]), bool), exits[:-1]])
    columns = pd.RangeIndex(len(fast))
    frame: Any = lambda a: pd.DataFrame(a, index=close.index, columns=columns)  # noqa: E731
    portfolio = vbt.Portfolio.from_signals(
        close, frame(entries), frame(exits), price=open_, fees=fee, init_cash=10_000.0, freq="1min"
    )
    return (
        np.asarray(portfolio.final_value(), dtype=np.float64),
        np.asarray(portfolio.trades.count(), dtype=np.int64),
    )


def run(folder: Path, chunk: int, fee: float) -> dict[str, float]:
    open_ = pd.Series(np.load(folder / "open.npy"))
    close = pd.Series(np.load(folder / "close.npy"))
    windows = np.load(folder / "windows.npy")
    # warm-up: compile vectorbt's numba functions outside the timed part
    backtest_chunk(open_.iloc[:2000], close.iloc[:2000], windows[:2, 0], windows[:2, 1], fee)
    started, cpu = time.perf_counter(), cpu_seconds()
    finals, trades = [], []
    for first in range(0, len(windows), chunk):
        part = windows[first : first + chunk]
        final, count = backtest_chunk(open_, close, part[:, 0], part[:, 1], fee)
        finals.append(final)
        trades.append(count)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    np.save(folder / "vectorbt_final.npy", np.concatenate(finals))
    np.save(folder / "vectorbt_trades.npy", np.concatenate(trades))
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak_rss_mib()}


if __name__ == "__main__":
    result = run(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
    print(json.dumps(result))
