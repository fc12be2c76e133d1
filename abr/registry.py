"""Policies by name: built-ins, a user's file (`path.py:Class`), and installed plug-ins.

Installed packages add policies through the entry-point group `abrlab.policies`.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from abr.base import Policy

_REGISTRY: dict[str, type[Policy]] = {}
ENTRY_POINT_GROUP = "abrlab.policies"


def register(name: str) -> Callable[[type[Policy]], type[Policy]]:
    def deco(cls: type[Policy]) -> type[Policy]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _entry_points() -> dict[str, Any]:
    from importlib import metadata   # 30 ms of imports, needed only for a name that is not built in

    try:
        return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # pragma: no cover - broken metadata should not break the CLI
        return {}


def registered() -> dict[str, type[Policy]]:
    """The policies registered in this process (the built-ins once `abr` is imported), by name."""
    return dict(_REGISTRY)


def names() -> list[str]:
    """Names of every built-in and installed policy."""
    return list(_REGISTRY) + sorted(n for n in _entry_points() if n not in _REGISTRY)


def policy_class(spec: str) -> type[Policy]:
    """Resolve a name, an installed plug-in, or `path/to/file.py:ClassName`."""
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        return _load_from_file(spec)
    eps = _entry_points()
    if spec in eps:
        cls = eps[spec].load()
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise ValueError(f"entry point {spec!r} does not name an abr.Policy subclass")
        return cls
    raise ValueError(f"unknown ABR policy {spec!r}; known: {', '.join(names())}")


def get(spec: str, **params: Any) -> Policy:
    """A fresh policy instance: `abr.get("robustmpc", horizon=5)`."""
    return policy_class(spec)(**params)


_FILE_MODULES: dict[tuple[str, int], Any] = {}


def _load_from_file(spec: str) -> type[Policy]:
    path_s, cls_name = spec.rsplit(":", 1)
    path = Path(path_s)
    if not path.is_file():
        raise ValueError(f"{path_s}: policy file not found")
    resolved = path.resolve()
    key = (str(resolved), resolved.stat().st_mtime_ns)
    module = _FILE_MODULES.get(key)
    if module is None:  # import each version of a file once, so its classes stay the same
        mod_name = f"abrlab_user_policy_{abs(hash(key))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ValueError(f"{path_s}: cannot import as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise ValueError(f"{path_s}: importing the policy file failed: "
                             f"{type(exc).__name__}: {exc}") from exc
        _FILE_MODULES[key] = module
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise ValueError(f"{path_s}: {cls_name!r} is not an abr.Policy subclass")
    if cls.name == "policy":
        cls.name = cls_name
    return cls
