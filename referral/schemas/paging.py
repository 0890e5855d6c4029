"""Paging: the query of a paginated list and the page information of every answer."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ..limits import DEFAULT_PER_PAGE, MAX_PER_PAGE


def page_field(deepest: int) -> fields.Integer:
    """A 1-based page number of at most ``deepest``."""
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=deepest))


def per_page_field() -> fields.Integer:
    """A page size (1 to ``MAX_PER_PAGE``)."""
    return fields.Integer(load_default=DEFAULT_PER_PAGE,
                          validate=validate.Range(min=1, max=MAX_PER_PAGE))


class PageQuerySchema(Schema):
    """Page number and size of a paginated list."""

    class Meta:
        unknown = RAISE

    page = page_field(100_000)
    per_page = per_page_field()


class PageInfoSchema(Schema):
    """Where a page stands in all results (each page schema adds its ``items``)."""

    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()
