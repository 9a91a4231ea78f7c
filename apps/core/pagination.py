from rest_framework import pagination

from apps.core.errors import ApplicationError


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF's page numbers, with a 400 naming the parameter for a page or page size that is not a positive
    integer (DRF would answer 404 "Invalid page", or silently use the default size). A page past the end
    stays a 404."""

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


def positive_int(raw, name: str) -> int:
    """A query parameter as a positive integer, or a 400 naming it."""
    try:
        number = int(raw)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ApplicationError(f"{name} must be a positive integer.", errors={name: ["A positive integer."]})
    return number
