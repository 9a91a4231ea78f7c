from rest_framework import pagination

from apps.core.errors import ApplicationError


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF's page numbers, with a 400 naming the parameter for a page or page size that is not a positive
    integer (DRF would answer 404 "Invalid page", or silently use the default size). A page past the end
    stays a 404; a page size beyond the maximum is capped."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_number(self, request, paginator):
        page = request.query_params.get(self.page_query_param) or 1
        if page in self.last_page_strings:
            return paginator.num_pages
        return positive_int(page, self.page_query_param)

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw not in (None, ""):
            return min(positive_int(raw, self.page_size_query_param), self.max_page_size)
        return self.page_size


POSITIVE_INT_MESSAGE = "A positive integer."


def positive_int_error(raw) -> tuple[int, str | None]:
    """(the number, None) for a positive integer, else (0, why not)."""
    try:
        number = int(raw)
    except (TypeError, ValueError):
        number = 0
    return (number, None) if number >= 1 else (0, POSITIVE_INT_MESSAGE)


def positive_int(raw, name: str) -> int:
    """A query parameter as a positive integer, or a 400 naming it."""
    number, error = positive_int_error(raw)
    if error:
        raise ApplicationError(f"{name} must be a positive integer.", errors={name: [error]})
    return number
