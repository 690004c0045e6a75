from django.urls import path

from artifacts import views

app_name = "artifacts"

urlpatterns = [
    path("", views.artifact_list, name="list"),
    path("upload/", views.artifact_upload, name="upload"),
    # A set by its name (v1.37.2-amd64) or id; "upload" is never a set's name.
    path("<str:name>/", views.artifact_detail, name="detail"),
    path("<str:name>/delete/", views.artifact_delete, name="delete"),
]
