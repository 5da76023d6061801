"""What the operator applies: a rendered object stamped with its owner and a hash of itself,
and the pure decision whether a live object needs that apply.

The hash annotation says which desired state was last applied, so a changed spec (including a
field that was removed) is applied once and an unchanged one never again. An edit by someone
else does not touch the annotation: it is found by checking that the live object still holds
every field the operator sets (the API server adds defaults, so extra fields are fine), with
resource quantities compared by value ("0.5" is "500m").
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from mastertrade_operator.render.objects import Manifest

HASH_ANNOTATION = "mastertrade.io/applied-hash"

QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$")
SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
}


def build_hash(manifest: Manifest) -> str:
    """sha256 of the object's canonical JSON (before the annotation is added)."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build_owner_reference(owner: Manifest) -> Manifest:
    """The controller reference to a MasterTradeDeployment."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_desired(manifest: Manifest, owner: Manifest) -> Manifest:
    """The object as applied: owned by `owner`, annotated with the hash of its content."""
    desired = copy.deepcopy(manifest)
    digest = build_hash(manifest)
    meta = desired["metadata"]
    meta["ownerReferences"] = [build_owner_reference(owner)]
    meta["annotations"] = {**meta.get("annotations", {}), HASH_ANNOTATION: digest}
    return desired


def _quantity(value: str) -> Decimal | None:
    match = QUANTITY.match(value)
    if match is None:
        return None
    try:
        return Decimal(match[1]) * SUFFIXES[match[2] or ""]
    except InvalidOperation:
        return None


def _same_scalar(desired: Any, live: Any) -> bool:
    if desired == live:
        return True
    if isinstance(desired, str) and isinstance(live, str):
        wanted, found = _quantity(desired), _quantity(live)
        return wanted is not None and wanted == found
    return False


def find_drift(desired: Any, live: Any, path: str = "") -> list[str]:
    """Paths where `live` does not hold what `desired` sets (extra fields in `live` are fine;
    an empty map or list may be missing, as the API server omits them)."""
    if desired in ({}, []) and live is None:
        return []
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path or "."]
        drift: list[str] = []
        for key, value in desired.items():
            drift += find_drift(value, live.get(key), f"{path}.{key}")
        return drift
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [path]
        return [
            found
            for index, item in enumerate(desired)
            for found in find_drift(item, live[index], f"{path}[{index}]")
        ]
    return [] if _same_scalar(desired, live) else [path]


def derive_apply_reason(desired: Manifest, live: Manifest | None) -> str | None:
    """Why `desired` must be applied over `live` ("missing", "changed", "drifted"), or None."""
    if live is None:
        return "missing"
    annotations = live.get("metadata", {}).get("annotations") or {}
    if annotations.get(HASH_ANNOTATION) != desired["metadata"]["annotations"][HASH_ANNOTATION]:
        return "changed"
    content = {key: value for key, value in desired.items() if key != "metadata"}
    meta = desired["metadata"]
    wanted = {**content, "metadata": {"labels": meta.get("labels", {})}}
    if find_drift(wanted, live) or not _owned_by(live, meta["ownerReferences"][0]["uid"]):
        return "drifted"
    return None


def _owned_by(live: Manifest, uid: str) -> bool:
    references = live.get("metadata", {}).get("ownerReferences") or []
    return any(reference.get("uid") == uid for reference in references)
