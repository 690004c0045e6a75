"""The first upload handler of every request (settings.FILE_UPLOAD_HANDLERS): it stops a request
whose files grow past ``ARTIFACT_MAX_BYTES`` (the largest upload Kubeboard takes, an artifact
set) before it is all on disk; Django's own handlers then keep the rest in pieces in a temporary
file, never the whole upload in memory."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class BoundedUpload(FileUploadHandler):
    """Counts every file byte of the request; past ``limit`` the upload stops (Django then drops
    what it received) and ``exceeded`` tells the view why the file is missing."""

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.limit = int(settings.ARTIFACT_MAX_BYTES)
        self.received = 0
        self.exceeded = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int):
        return None
