from __future__ import annotations


def cluster_panel(cluster, user) -> dict:
    """The cluster page's tokens panel: states, countdowns, the timeline, the sync state."""
    from tokens.views import token_context

    context = token_context(cluster, user)
    # The panel and the page share one context; the cluster page sets its own permission flags.
    return {
        key: context[key]
        for key in (
            "token_rows",
            "live_count",
            "policy",
            "token_sync",
            "timeline",
            "certificate_keys",
            "current_certificate_key",
        )
    } | {"tokens": [row["token"] for row in context["token_rows"]]}
