from django.urls import path

from apps.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("alerts/", views.alerts_board, name="alerts"),
    path("sensors/<int:pk>/", views.sensor_page, name="sensor"),
    path("devices/<int:pk>/", views.device_page, name="device"),
    path("login/", views.DashboardLoginView.as_view(), name="login"),
    path("logout/", views.DashboardLogoutView.as_view(), name="logout"),
]
