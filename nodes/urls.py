from django.urls import path

from nodes import views

app_name = "nodes"

# Included under /clusters/<cluster>/nodes/ (config/urls.py). The "_" routes cannot clash with a
# node name: node names are DNS names, which have no "_".
urlpatterns = [
    path("_add/", views.node_add, name="add"),
    path("_ssh-key/", views.cluster_key_generate, name="cluster-key"),
    path("_bulk-add/", views.node_bulk_add, name="bulk-add"),
    path("_host-keys/", views.machine_host_keys, name="host-keys"),
    path("_host-keys/check/", views.bulk_check, name="bulk-check"),
    path("_host-keys/accept/", views.bulk_host_key_accept, name="bulk-host-key-accept"),
    path("<str:node>/", views.node_detail, name="detail"),
    path("<str:node>/edit/", views.node_edit, name="edit"),
    path("<str:node>/delete/", views.node_delete, name="delete"),
    path("<str:node>/check/", views.node_check, name="check"),
    path("<str:node>/check/status/", views.node_check_status, name="check-status"),
    path("<str:node>/host-key/accept/", views.host_key_accept, name="host-key-accept"),
    path("<str:node>/host-key/keep/", views.host_key_keep, name="host-key-keep"),
]
