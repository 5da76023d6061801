"""MasterTrade's model: the typed values and workload catalog, every setting, and the broker
topology. The chart generation, the operator and the services import it; it imports none of
them (an import-linter contract in `make lint` holds that)."""

from mastertrade_model.catalog import chart_dir, load_default_values, load_values
from mastertrade_model.values import Dependency, Values, Workload

__all__ = ["Dependency", "Values", "Workload", "chart_dir", "load_default_values", "load_values"]
