"""OpenAPI additions: the bodies of routes that read their JSON themselves (to report every bad item, not the first),
the problem-details media type of every error answer, and the ``Location`` of every ``202``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from api.errors import PROBLEM_JSON

REF = "#/components/schemas/{model}"

LOCATION = {"Location": {"description": "Where to follow what was accepted", "schema": {"type": "string"}}}


def errors_doc(**descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error statuses (``errors_doc(e404="No such batch")``), as problem details."""
    from api.schemas import ProblemDetails  # noqa: PLC0415 - schemas import this module's callers

    return {int(key[1:]): {"model": ProblemDetails, "description": text} for key, text in descriptions.items()}


def json_body_doc(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` documenting a required JSON body of ``model``'s shape."""
    schema = {"$ref": REF.format(model=model.__name__)}
    content = {"application/json": {"schema": schema, "examples": examples}}
    return {"requestBody": {"required": True, "content": content}}


def add_body_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Put ``models`` (and the models they use) into the document's components, where json_body_doc points, and
    serve every error answer as ``application/problem+json``, as the handlers in api.errors do."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template=REF)
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            for path in doc["paths"].values():
                for operation in path.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if status[0] in "45" and "application/json" in content:
                            content[PROBLEM_JSON] = content.pop("application/json")
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
