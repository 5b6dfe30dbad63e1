"""One registry mechanism for every kind of pluggable component.

Archives, operators, LLM backends, arm selectors and domains are each a :class:`Registry`: a
mapping from a kind name to the class (or factory) that builds it, plus the typed parameter
model (a pydantic model with unknown keys forbidden) that the kind's parameters are checked
against when a configuration is loaded.

Entries are lazy: a built-in kind is registered as a ``"package.module:Name"`` string and
imported on first use, so importing a registry imports no heavy module (pyribs, torch,
llama.cpp) and no module that itself imports the registry. Every registry also accepts any
``package.module:Name`` a user writes in place of a kind name, so users extend evolm without
editing it::

    [[operators]]
    kind = "my_package.ops:Shuffle"     # a subclass of evolm.operators.Operator
    params = { rate = 0.5 }             # checked against Shuffle.Params if it declares one

A user class may declare its parameter model as a nested ``Params`` class (a pydantic model);
without one, its constructor's signature is the model.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

__all__ = [
    "Registry",
    "RegistryError",
    "format_params_error",
    "import_object",
    "is_import_path",
    "params_from_signature",
]

T = TypeVar("T")


class RegistryError(ValueError):
    """A kind name is unknown, a ``module:Name`` cannot be imported, or parameters are wrong."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` has the form ``package.module:Name``."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr) and all(
        part.isidentifier() for part in (*module.split("."), *attr.split("."))
    )


def import_object(path: str) -> Any:
    """The object ``package.module:Name`` names (``Name`` may be dotted: ``Outer.Inner``).

    Raises:
        RegistryError: the module cannot be imported or has no such name.
    """
    if not is_import_path(path):
        raise RegistryError(f"{path!r} is not of the form 'package.module:Name'")
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(
            f"cannot load {path!r} ({type(exc).__name__}: {exc}); use 'package.module:Name' "
            "with the module importable from the run's working directory (or on PYTHONPATH)"
        ) from exc
    return obj


class _ForbidExtra(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def params_from_signature(
    target: Any, skip: tuple[str, ...] = (), name: str | None = None
) -> type[BaseModel]:
    """A pydantic model (unknown keys forbidden) of the keyword parameters of ``target``
    (a class: its ``__init__``), leaving out ``skip`` and ``self``. Annotations that cannot be
    resolved are taken as ``Any``."""
    fn = target.__init__ if inspect.isclass(target) else target
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation names something only imported for type checking
        hints = {}
    fields: dict[str, Any] = {}
    for pname, p in inspect.signature(fn).parameters.items():
        if pname in ("self", *skip) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[pname] = (hints.get(pname, Any), default)
    model_name = name or f"{getattr(target, '__name__', 'Target')}Params"
    model: type[BaseModel] = create_model(model_name, __base__=_ForbidExtra, **fields)
    return model


def format_params_error(what: str, exc: ValidationError) -> str:
    """One sentence per problem in ``exc``, each naming the key."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(all)"
        if err["type"] == "extra_forbidden":
            parts.append(f"{key}: not a parameter of {what}")
        elif err["type"] == "missing":
            parts.append(f"{key}: required by {what}")
        else:
            parts.append(f"{key}: {err['msg']} (given: {err.get('input')!r})")
    return "; ".join(parts)


@dataclass
class _Entry:
    target: Any
    params: Any  # a pydantic model class, a "module:Name" string, or None
    summary: str


class Registry(Mapping[str, T], Generic[T]):
    """Kinds of one component, by name, loaded on first use.

    Args:
        what: what an entry is, for messages (``"operator"``, ``"LLM backend"``).
        entries: built-in kinds, name -> target (usually ``"package.module:Name"``).
        base: the class every loaded entry must subclass (checked on load), or None.
        skip: constructor parameters that are not user parameters (e.g. ``context``), left out
            of a parameter model derived from a signature.

    A registry is a read-only mapping from built-in and registered names to loaded targets;
    ``name in registry`` and ``registry[name]`` also accept ``package.module:Name``.
    """

    def __init__(
        self,
        what: str,
        entries: Mapping[str, Any] | None = None,
        *,
        base: type | None = None,
        skip: tuple[str, ...] = (),
    ) -> None:
        self.what = what
        self.base = base
        self.skip = skip
        self._entries: dict[str, _Entry] = {}
        self._loaded: dict[str, Any] = {}
        for name, target in (entries or {}).items():
            self.register(name, target)

    def decorator(self, name: str) -> Callable[[Any], Any]:
        """A class decorator registering the class under ``name`` (and returning it)."""

        def deco(target: Any) -> Any:
            self.register(name, target)
            return target

        return deco

    def register(
        self,
        name: str,
        target: str | Any,
        params: str | type[BaseModel] | None = None,
        summary: str = "",
    ) -> None:
        """Add (or replace) kind ``name``.

        Args:
            name: the kind name users write; must not contain ``:``.
            target: the class or factory, or ``"package.module:Name"`` to import it lazily.
            params: its parameter model (or ``"package.module:Model"``); default: the target's
                ``Params`` attribute if it has one, else its constructor's signature.
            summary: one line for help texts.
        """
        if ":" in name or not name:
            raise ValueError(f"a {self.what} name must be non-empty and have no ':', got {name!r}")
        self._entries[name] = _Entry(target, params, summary)
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def summary(self, name: str) -> str:
        """The one-line summary a kind was registered with ('' if none)."""
        entry = self._entries.get(name)
        return entry.summary if entry else ""

    def _unknown(self, name: str) -> RegistryError:
        known = ", ".join(self._entries) or "none"
        return RegistryError(
            f"unknown {self.what} {name!r}; known {self.what}s: {known} "
            "(or 'package.module:Name' for your own)"
        )

    def get(self, name: str, default: Any = None) -> T:
        """The target of ``name``: a registered kind or any ``package.module:Name``.

        Raises:
            RegistryError: unknown name (the message lists the known ones), a path that cannot
                be imported, or a target that is not a subclass of :attr:`base`.
        """
        if name in self._loaded:
            loaded: T = self._loaded[name]
            return loaded
        entry = self._entries.get(name)
        if entry is None and not is_import_path(name):
            raise self._unknown(name)
        raw = entry.target if entry is not None else name
        target = import_object(raw) if isinstance(raw, str) else raw
        if (
            self.base is not None
            and not (inspect.isclass(target) and issubclass(target, self.base))
            and (entry is not None or inspect.isclass(target))
        ):
            raise RegistryError(
                f"{name!r} is {target!r}, not a subclass of {self.base.__module__}."
                f"{self.base.__name__}; a {self.what} must subclass it"
            )
        self._loaded[name] = target
        found: T = target
        return found

    def params_model(self, name: str) -> type[BaseModel]:
        """The parameter model of ``name`` (unknown keys forbidden).

        Raises:
            RegistryError: as :meth:`get`.
        """
        entry = self._entries.get(name)
        declared = entry.params if entry is not None else None
        if isinstance(declared, str):
            declared = import_object(declared)
        if declared is not None:
            model: type[BaseModel] = declared
            return model
        target = self.get(name)
        own = getattr(target, "Params", None)
        if inspect.isclass(own) and issubclass(own, BaseModel):
            return own
        return params_from_signature(target, self.skip, f"{name.rpartition(':')[2]}Params")

    def check_params(self, name: str, params: Mapping[str, Any]) -> None:
        """Validate ``params`` for kind ``name``.

        Raises:
            RegistryError: a key the kind does not take, a missing or mistyped one; the message
                names each key and the kind.
        """
        model = self.params_model(name)
        try:
            model.model_validate(dict(params))
        except ValidationError as exc:
            raise RegistryError(
                f"bad parameters for {self.what} {name!r}: {format_params_error(repr(name), exc)}"
            ) from exc

    # -- Mapping -------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        try:
            target: T = self.get(name)
        except RegistryError as exc:
            raise KeyError(str(exc)) from exc
        return target

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._entries:
            return True
        if not is_import_path(name):
            return False
        try:
            self.get(name)
        except RegistryError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
