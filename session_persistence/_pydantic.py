"""Pydantic models in sessions: ``register_pydantic(*models_or_modules)``.

Agent frameworks' events are pydantic models (the Sentient framework's ``TextChunkEvent``,
``DocumentEvent``, ...). Registered, an instance round-trips as the same class with its fields
exact, because the fields are encoded one by one by the codec itself, not through JSON mode::

    {"$object": ["sentient_agent_framework.interface.events.TextChunkEvent",
                 {"id": {"$ulid": "01J..."}, "content": "Hel", "stream_id": "s1", ...}]}

so ULIDs, datetimes, sets, bytes, enums and other registered types (nested models included)
inside a model come back as themselves. Reading rebuilds the model with
``model_validate(fields, by_name=True)``: what is read from disk is validated, like any other
input, and a document that no longer fits the model is a typed error naming where it sits.

Registration is explicit. A stored document names its class, but reading never imports
anything by that name: a class that was not registered in this process is an error that says
what to register. pydantic itself stays optional (the ``pydantic`` extra): it is imported only
when ``register_pydantic`` is called.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from typing import TYPE_CHECKING, Any

from .errors import SerializationError
from .serialization import Codec, default_codec

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["register_pydantic"]


def register_pydantic(
    *models_or_modules: type[BaseModel] | types.ModuleType, codec: Codec | None = None
) -> list[type[BaseModel]]:
    """Register pydantic models, or every model a module defines, in one call.

    Instances then round-trip as the same classes with their fields exact (see the module
    docs). Each class is stored under its ``module.QualName``. The models and ``Enum``
    classes that a registered model's fields name (``content: ErrorContent``,
    ``content_type: Literal[EventContentType.JSON]``) are registered with it, transitively.

    Args:
        models_or_modules: Model classes, and modules whose ``BaseModel`` subclasses (those
            defined in that module, not ones it imports) are all registered.
        codec: The codec to register with (default: the process-wide one every store uses).

    Returns:
        The classes registered.

    Raises:
        SerializationError: An argument is neither a pydantic model class nor a module, or a
            name is already registered for another class.
        ImportError: pydantic is not installed (``pip install 'session-persistence[pydantic]'``).
    """
    try:
        from pydantic import BaseModel  # noqa: PLC0415 - optional: imported when used
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "register_pydantic needs pydantic: pip install 'session-persistence[pydantic]'"
        ) from exc
    target = codec or default_codec
    models: list[type[BaseModel]] = []
    for item in models_or_modules:
        if isinstance(item, types.ModuleType):
            models.extend(
                member
                for _, member in inspect.getmembers(item, inspect.isclass)
                if issubclass(member, BaseModel)
                and member.__module__ == item.__name__
                and not _is_parametrized(member)
            )
        elif isinstance(item, type) and issubclass(item, BaseModel) and item is not BaseModel:
            models.append(item)
        else:
            raise SerializationError(
                f"register_pydantic takes pydantic model classes or modules, got {item!r}"
            )
    enums: list[type[enum.Enum]] = []
    for model in _closure(models, enums, BaseModel):
        target.register_type(model, encode=_fields_of, decode=_rebuilder(model))
        if model not in models:
            models.append(model)
    for kind in enums:
        target.register_enum(kind)
    return models


def _closure(
    models: list[type[BaseModel]], enums: list[type[enum.Enum]], base: type[BaseModel]
) -> list[type[BaseModel]]:
    """``models`` plus the models and enums their fields name (transitively), in order."""
    seen: list[type[BaseModel]] = []
    todo = list(models)
    while todo:
        model = todo.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            for kind in _named_types(field.annotation):
                if issubclass(kind, enum.Enum):
                    if kind not in enums:
                        enums.append(kind)
                elif issubclass(kind, base) and kind is not base and not _is_parametrized(kind):
                    todo.append(kind)
    return seen


def _named_types(annotation: Any) -> list[type[Any]]:
    """The classes an annotation names (``list[Foo] | None`` -> ``[list, Foo, NoneType]``).

    A ``Literal`` of enum members names their enum.
    """
    found: list[type[Any]] = []
    todo = [annotation]
    while todo:
        node = todo.pop()
        if isinstance(node, type):
            found.append(node)
        elif isinstance(node, enum.Enum):
            found.append(type(node))
        todo.extend(typing.get_args(node))
        origin = typing.get_origin(node)
        if isinstance(origin, type):
            found.append(origin)
    return found


def _is_parametrized(model: type[Any]) -> bool:
    """Whether ``model`` is a parametrization such as ``Request[Foo]`` (not a class of its own)."""
    metadata = getattr(model, "__pydantic_generic_metadata__", None)
    return bool(metadata and metadata.get("origin") is not None)


def _fields_of(model: BaseModel) -> dict[str, Any]:
    """The model's field values by field name (extra fields too), unconverted."""
    fields = {name: getattr(model, name) for name in type(model).model_fields}
    extra = model.__pydantic_extra__
    if extra:
        fields.update(extra)
    return fields


def _rebuilder(model: type[BaseModel]) -> Any:
    def decode(payload: Any) -> BaseModel:
        if not isinstance(payload, dict):
            raise SerializationError(f"{model.__name__} payload must be an object of fields")
        return model.model_validate(payload, by_name=True, by_alias=False)

    return decode
