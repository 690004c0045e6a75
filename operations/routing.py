from django.urls import path

from operations.consumers import OperationEventsConsumer

websocket_urlpatterns = [
    path("ws/operations/<int:operation_id>/", OperationEventsConsumer.as_asgi()),
]
