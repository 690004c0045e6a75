from django.urls import path

from tokens import views

app_name = "tokens"

urlpatterns = [
    path("", views.token_list, name="list"),
    path("new/", views.token_create, name="create"),
    path("sync/", views.token_sync, name="sync"),
    path("policy/", views.policy_edit, name="policy"),
    path("certificate-keys/new/", views.certificate_key_create, name="certificate_key_create"),
    path("certificate-keys/<int:pk>/reveal/", views.certificate_key_reveal, name="certificate_key_reveal"),
    path("<str:token_id>/created/", views.token_created, name="created"),
    path("<str:token_id>/rotate/", views.token_rotate, name="rotate"),
    path("<str:token_id>/delete/", views.token_delete, name="delete"),
    path("<str:token_id>/reveal/", views.token_reveal, name="reveal"),
    path("<str:token_id>/join-command/", views.token_join_command, name="join_command"),
]
