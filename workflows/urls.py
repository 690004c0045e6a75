from django.urls import path

from workflows import cluster_actions, endpoint_views, prepare_views, scheduling_views, views

app_name = "daytwo"

# Under /clusters/<name>/day2/ (config/urls.py).
urlpatterns = [
    path("upgrade/", views.upgrade_plan, name="upgrade"),
    path("upgrade/start/", views.upgrade_start, name="upgrade-start"),
    path("settings/", views.settings, name="settings"),
    path("reset/", views.reset_node, name="reset"),
    path("undo-join/<str:node>/", views.undo_join, name="undo-join"),
    path("certificates/", views.certificate_page, name="certificates"),
    path("certificates/read/", views.certificates_read, name="certificates-read"),
    path("certificates/renew/", views.certificates_renew, name="certificates-renew"),
    path("certificates/policy/", views.renewal_policy, name="renewal-policy"),
    path("backups/", views.backup_page, name="backups"),
    path("backups/snapshot/", views.snapshot_take, name="snapshot"),
    path("backups/schedule/", views.backup_schedule, name="backup-schedule"),
    path("backups/<int:pk>/download/", views.snapshot_download, name="snapshot-download"),
    path("backups/<int:pk>/delete/", views.snapshot_delete, name="snapshot-delete"),
    path("backups/<int:pk>/restore/", views.snapshot_restore, name="snapshot-restore"),
    path("configuration/", views.configuration_page, name="configuration"),
    path("configuration/export/", views.configuration_export, name="configuration-export"),
    path("nodes/<str:node>/scheduling/", scheduling_views.node_scheduling, name="node-scheduling"),
    path("prepare-settings/", prepare_views.prepare_settings, name="prepare-settings"),
]

# The cluster page's initialize, join and read-back, under /clusters/ in the clusters namespace (config/urls.py
# adds them to clusters/urls.py's routes): their paths and names are the ones they had in clusters/.
cluster_urlpatterns = [
    path("<str:name>/initialize/", cluster_actions.initialize, name="initialize"),
    path("<str:name>/join/", cluster_actions.join, name="join"),
    path("<str:name>/read-back/", cluster_actions.read_back, name="read-back"),
    path("<str:name>/pod-network/", cluster_actions.pod_network, name="pod-network"),
    path("<str:name>/prepare/", prepare_views.prepare_machines, name="prepare"),
    path("<str:name>/endpoint/", endpoint_views.endpoint_status, name="endpoint-status"),
]
