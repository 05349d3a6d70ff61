"""Extension points around every cloud call: the worker's rate limiter and metrics plug in here."""

from __future__ import annotations


class ClientHooks:
    """Do-nothing hooks; subclass and override what you need.

    Endpoint names: ``copy``, ``cross_region_copy``, ``job``, ``job_progress``, ``list_images``, ``show_image``,
    ``delete_image``, ``quota``, ``tag_action``, ``list_tags``, ``add_members``, ``remove_members``,
    ``update_members``, ``list_members``, ``list_keys``, ``describe_key``, ``list_projects``, ``token``. Every call
    that passed ``before_request`` is followed by exactly one ``after_response`` (also when no answer came), so the
    two can be paired. A request replayed after a token renewal is part of the same call; the renewal itself is a
    ``token`` call of its own.
    """

    def before_request(self, endpoint: str) -> None:
        """Called before a request is sent; may raise ``ThrottledError`` to refuse it (nothing is sent)."""

    def after_response(self, endpoint: str, outcome: str) -> None:
        """Called once per call with its outcome: an HTTP status (``"200"``, ``"429"``), an IMS code
        (``"IMG.0060"``), ``"timeout"``, ``"connection_error"``, ``"malformed"`` or ``"token_error"``."""
