from django.urls import path, re_path

from operations.consumers import OperationEventsConsumer, UnknownPathConsumer

websocket_urlpatterns = [
    path("ws/operations/<int:operation_id>/", OperationEventsConsumer.as_asgi()),
    # Last: any other path is closed with 4404 rather than failing the handshake with a 500.
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
