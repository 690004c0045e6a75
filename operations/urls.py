from django.urls import path

from operations import views

app_name = "operations"

urlpatterns = [
    path("<int:pk>/", views.operation_detail, name="detail"),
    path("<int:pk>/resume/", views.operation_resume, name="resume"),
    path("<int:pk>/cancel/", views.operation_cancel, name="cancel"),
    path("<int:pk>/log.txt", views.operation_log_text, name="log-text"),
]
