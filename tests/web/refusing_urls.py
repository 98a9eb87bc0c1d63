"""URLs for tests/web/test_input_pages.py: Obeya's own, and a page whose database refuses
the number it is given (as a page would that stored a number past its column's range)."""

from __future__ import annotations

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path

from obeya.urls import urlpatterns as obeya_urls


def stores_a_number(request: HttpRequest) -> HttpResponse:
    # In a transaction, as every change in a service is; SQLite raises OverflowError,
    # PostgreSQL DataError.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT CAST(%s AS BIGINT)", [int(request.POST["number"])])
    return HttpResponse("stored")


urlpatterns = [path("test-number/", stores_a_number), *obeya_urls]
