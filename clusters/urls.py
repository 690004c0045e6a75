from django.urls import path

from clusters import action_views, views

app_name = "clusters"

urlpatterns = [
    path("", views.cluster_list, name="list"),
    path("new/", views.cluster_create, name="create"),
    path("<str:name>/", views.cluster_detail, name="detail"),
    path("<str:name>/initialize/", action_views.initialize, name="initialize"),
    path("<str:name>/join/", action_views.join, name="join"),
    path("<str:name>/engine-settings/", action_views.engine_settings, name="engine-settings"),
    path("<str:name>/admin-kubeconfig/", action_views.admin_kubeconfig, name="admin-kubeconfig"),
    path("<str:name>/read-back/", action_views.read_back, name="read-back"),
    path("<str:name>/delete/", views.cluster_delete, name="delete"),
]
