"""The typed model of MasterTrade's values (chart) and spec (operator), and its catalog."""

from mastertrade_operator.model.catalog import CHART_DIR, load_default_values, load_values
from mastertrade_operator.model.values import Values, Workload

__all__ = ["CHART_DIR", "Values", "Workload", "load_default_values", "load_values"]
