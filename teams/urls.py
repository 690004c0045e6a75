from django.urls import path

from teams import views

app_name = "teams"

urlpatterns = [
    path("", views.team_list, name="list"),
    path("new/", views.team_create, name="create"),
    path("users/new/", views.user_create, name="user_create"),
    path("<int:pk>/", views.team_detail, name="detail"),
    path("<int:pk>/members/", views.member_add, name="member_add"),
    path("<int:pk>/members/<int:member>/role/", views.member_role, name="member_role"),
    path("<int:pk>/members/<int:member>/remove/", views.member_remove, name="member_remove"),
]
