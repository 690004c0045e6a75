from django.urls import path

from operations import views

app_name = "operations"

urlpatterns = [
    path("<int:pk>/", views.operation_detail, name="detail"),
    path("<int:pk>/resume/", views.operation_resume, name="resume"),
]
