from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from clusters import urls as cluster_urls
from core import admin as core_admin
from core import health
from core.login_forms import AdminLoginForm, LoginForm
from teams import views as teams_views
from workflows import adoption_views
from workflows import urls as workflow_urls
from workflows import views as workflow_views

admin.site.site_header = "Kubeboard administration"
admin.site.site_title = "Kubeboard"
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="clusters:list", permanent=False)),
    path("login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", teams_views.PasswordChange.as_view(), name="password-change"),
    path("clusters/adopt/", adoption_views.adopt, name="adopt-cluster"),
    path("clusters/import/", workflow_views.import_cluster, name="import-cluster"),
    # The clusters namespace: the noun's own routes and the cluster page's initialize and join,
    # which live in workflows/ (they span nouns) and keep their names clusters:initialize, clusters:join.
    path(
        "clusters/", include(([*cluster_urls.urlpatterns, *workflow_urls.cluster_urlpatterns], cluster_urls.app_name))
    ),
    path("clusters/<str:cluster>/nodes/", include("nodes.urls")),
    path("clusters/<str:name>/tokens/", include("tokens.urls")),
    path("clusters/<str:name>/day2/", include("workflows.urls")),
    path("operations/", include("operations.urls")),
    path("artifacts/", include("artifacts.urls")),
    path("audit/", include("audit.urls")),
    path("teams/", include("teams.urls")),
    # Before the admin's own /admin/r/ (which sends any staff member to any team's object).
    path(
        "admin/r/<path:content_type_id>/<path:object_id>/",
        admin.site.admin_view(core_admin.view_on_site),
        name="admin-view-on-site",
    ),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
