from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "apps.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from django.contrib import admin

        # The admin index links to the dashboard pages (its template adds a "Plant" module above the apps).
        admin.site.index_template = "dashboard/admin_index.html"
