from django.urls import path

from clusters import action_views, addon_views, material_views, views

app_name = "clusters"

urlpatterns = [
    path("", views.cluster_list, name="list"),
    path("new/", views.cluster_create, name="create"),
    path("<str:name>/", views.cluster_detail, name="detail"),
    path("<str:name>/live/", views.cluster_live, name="live"),
    path("<str:name>/addons/", addon_views.cluster_addons, name="addons"),
    path("<str:name>/engine-settings/", action_views.engine_settings, name="engine-settings"),
    path("<str:name>/pod-network-settings/", action_views.pod_network_settings, name="pod-network-settings"),
    path("<str:name>/admin-kubeconfig/", action_views.admin_kubeconfig, name="admin-kubeconfig"),
    path("<str:name>/delete/", views.cluster_delete, name="delete"),
    path("<str:name>/ca/<str:ca>.crt", material_views.ca_certificate, name="ca-certificate"),
    path("<str:name>/ca-pin.txt", material_views.ca_pin, name="ca-pin"),
    path("<str:name>/kubeadm-config.yaml", material_views.kubeadm_config, name="kubeadm-config"),
]
