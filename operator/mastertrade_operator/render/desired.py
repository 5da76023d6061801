"""What the operator applies: a rendered object stamped with its owner and a hash of itself,
and the pure decision whether a live object needs that apply.

The hash annotation says which desired state was last applied, so a changed spec (including a
field that was removed) is applied once and an unchanged one never again. An edit by someone
else does not touch the annotation: it is found by checking that the live object still holds
every field the operator sets (the API server adds defaults, and other field managers add
annotations, env vars or list items of their own, so extra fields are fine), with resource
quantities compared by value ("0.5" is "500m"). A difference found that way is only a suspicion
("drifted"): the caller confirms it with a server-side apply dry run (`same_after_apply`), so a
field that server-side apply would leave as it is (another manager's) is never fought over.

The credentials Secret carries no owner reference: deleting the resource keeps it, with the
PVCs whose data was initialised with its passwords. A workload an HPA scales is applied without
`spec.replicas` (`release_replicas`), so the HPA's figure stands.
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
OWNER_KIND = "MasterTradeDeployment"
LIST_KEYS = ("name", "mountPath", "containerPort", "port")
"""Keys that identify the items of the lists in the objects rendered here."""

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


def is_kept(manifest: Manifest) -> bool:
    """Objects that outlive the resource: the credentials Secret."""
    return bool(manifest["kind"] == "Secret")


def build_desired(manifest: Manifest, owner: Manifest) -> Manifest:
    """The object as applied: owned by `owner` (unless kept), annotated with the hash of its
    content."""
    desired = copy.deepcopy(manifest)
    digest = build_hash(manifest)
    meta = desired["metadata"]
    if not is_kept(manifest):
        meta["ownerReferences"] = [build_owner_reference(owner)]
    meta["annotations"] = {**meta.get("annotations", {}), HASH_ANNOTATION: digest}
    return desired


def release_replicas(manifest: Manifest) -> Manifest:
    """The workload without `spec.replicas`: an autoscaler owns that figure."""
    released = copy.deepcopy(manifest)
    released["spec"].pop("replicas", None)
    return released


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


def _list_key(items: list[Any]) -> str | None:
    """The key of a list of objects merged item by item (env vars, containers, ports): one
    that every item has, with no two items alike (two mounts of one volume share a name)."""
    for key in LIST_KEYS:
        values = [str(item.get(key)) for item in items if isinstance(item, dict) and key in item]
        if items and len(values) == len(items) and len(set(values)) == len(values):
            return key
    return None


def _find_list_drift(desired: list[Any], live: Any, path: str) -> list[str]:
    if not isinstance(live, list):
        return [path]
    key = _list_key(desired)
    if key is not None:  # other managers' items may sit beside ours
        found = {item.get(key): item for item in live if isinstance(item, dict)}
        return [
            drift
            for item in desired
            for drift in find_drift(item, found.get(item[key]), f"{path}[{key}={item[key]}]")
        ]
    if len(live) != len(desired):
        return [path]
    return [
        found
        for index, item in enumerate(desired)
        for found in find_drift(item, live[index], f"{path}[{index}]")
    ]


def find_drift(desired: Any, live: Any, path: str = "") -> list[str]:
    """Paths where `live` does not hold what `desired` sets (extra fields and extra keyed list
    items in `live` are fine; an empty map or list may be missing, as the API server omits
    them)."""
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
        return _find_list_drift(desired, live, path)
    return [] if _same_scalar(desired, live) else [path]


def derive_apply_reason(desired: Manifest, live: Manifest | None) -> str | None:
    """Why `desired` must be applied over `live` ("missing", "changed", "drifted"), or None.
    "drifted" is a suspicion, for `same_after_apply` to confirm."""
    if live is None:
        return "missing"
    annotations = live.get("metadata", {}).get("annotations") or {}
    if annotations.get(HASH_ANNOTATION) != desired["metadata"]["annotations"][HASH_ANNOTATION]:
        return "changed"
    if _owner_uids(desired) != _owner_uids(live) or find_drift(comparable_part(desired), live):
        return "drifted"
    return None


def comparable_part(desired: Manifest) -> Manifest:
    """What the drift check compares: the content and labels (not apiVersion and kind, which
    a LIST's items lack, nor other metadata)."""
    content = {
        key: value
        for key, value in desired.items()
        if key not in ("metadata", "apiVersion", "kind")
    }
    return {**content, "metadata": {"labels": desired["metadata"].get("labels", {})}}


def _owner_uids(manifest: Manifest) -> set[str]:
    """The MasterTradeDeployments named as owners (other owners are someone else's business)."""
    references = manifest.get("metadata", {}).get("ownerReferences") or []
    return {str(ref.get("uid")) for ref in references if ref.get("kind") == OWNER_KIND}


SERVER_FIELDS = ("managedFields", "resourceVersion", "generation")


def _comparable_whole(manifest: Manifest) -> Manifest:
    meta = {k: v for k, v in manifest.get("metadata", {}).items() if k not in SERVER_FIELDS}
    rest = {k: v for k, v in manifest.items() if k not in ("metadata", "status")}
    return {**rest, "metadata": meta}


def same_after_apply(dry_run: Manifest, live: Manifest) -> bool:
    """Whether a server-side apply (its dry-run result) would leave `live` as it is: fields
    another manager owns stay, so a difference there is no drift of ours."""
    return _comparable_whole(dry_run) == _comparable_whole(live)
