"""A faster ``__init__`` for frozen slots dataclasses built by the hundred thousand (the
partition registrations of a metadata image).

A frozen dataclass's generated ``__init__`` stores each field through ``object.__setattr__``
looked up at run time; ``fast_frozen_init(cls)`` replaces it with one that stores through the
class's slot descriptors, about three times cheaper, with the same signature, defaults and
default factories. The class stays frozen: only ``__init__`` writes the slots.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_frozen_init"]

T = TypeVar("T", bound=type)


def fast_frozen_init(cls: T) -> T:
    """Give the frozen slots dataclass ``cls`` the faster ``__init__`` (returns ``cls``)."""
    params = getattr(cls, "__dataclass_params__", None)
    assert params is not None and params.frozen and "__slots__" in cls.__dict__, cls
    assert not hasattr(cls, "__post_init__"), cls
    ns: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    args: list[str] = []
    body: list[str] = []
    for i, f in enumerate(dataclasses.fields(cls)):
        assert f.init and not f.kw_only, f
        ns[f"_set{i}"] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            ns[f"_d{i}"] = f.default
            args.append(f"{f.name}=_d{i}")
            body.append(f"    _set{i}(self, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"_f{i}"] = f.default_factory
            args.append(f"{f.name}=_MISSING")
            body.append(f"    _set{i}(self, _f{i}() if {f.name} is _MISSING else {f.name})")
        else:
            args.append(f.name)
            body.append(f"    _set{i}(self, {f.name})")
    source = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    # The source is generated from the dataclass's own field list.
    exec(compile(source, f"<fast_frozen_init {cls.__name__}>", "exec"), ns)  # noqa: S102
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[misc]
    return cls
