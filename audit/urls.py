from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.history, name="history"),
    path("export.<str:fmt>", views.export, name="export"),
    path("nodes/<int:node_id>/", views.node_history, name="node"),
]
