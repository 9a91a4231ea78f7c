from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "apps.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from django.contrib import admin
        from django.urls import reverse_lazy

        # The admin index links to the dashboard pages (its template adds a "Plant" module above the apps), and
        # the admin's "View site" leads to the plant overview (there is no other site to view).
        admin.site.index_template = "dashboard/admin_index.html"
        admin.site.site_url = reverse_lazy("dashboard:overview")
