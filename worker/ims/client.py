"""``ImsClient``: the IMS, KMS and IAM calls the worker makes, for one account, with typed errors.

Synchronous on purpose: Celery prefork tasks are synchronous. Every call passes through ``ClientHooks`` (the
cluster-wide rate limiter and metrics) and ends in data or in a ``worker.errors`` exception, never in a raw httpx
error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from config.settings import AccountSettings, CredentialsSource
from config.version import DISTRIBUTION, VERSION
from worker.domain.naming import is_uuid
from worker.errors import CloudUnavailableError, ImsRefusedError, ReplicatorError
from worker.ims.credentials import Credentials, FileCredentials, MetadataCredentials, StaticCredentials
from worker.ims.hooks import ClientHooks
from worker.ims.models import MEMBER_ANSWERS, MEMBER_STATUSES, Image, ImageMember, ImageQuota, Job, KmsKey
from worker.ims.responses import error_from_response, json_body, outcome, request_id
from worker.ims.signer import UNSCOPED, AkSkAuth
from worker.ims.token import TokenAuth, is_token_request
from worker.ims.transport import ThreadPools

T = TypeVar("T")

USER_AGENT = f"{DISTRIBUTION}/{VERSION}"
JSON_UTF8 = "application/json;charset=UTF-8"  # what the SDK sends on the copy calls
DEFAULT_PAGE_SIZE = 500  # the service's default ``limit``
_KEY_PAGE_SIZE = "1000"  # KMS takes ``limit`` as a string
_KMS_INVALID_KEY_ID = "KMS.0205"  # KMS's answer for an unknown key ID (DEW error-code table)


def _segment(value: str) -> str:
    # IDs go into paths; encoding them keeps a hostile value from changing the path.
    return quote(value, safe="")


def _parsed(endpoint: str, response: httpx.Response, parse: Callable[[dict[str, Any]], T]) -> T:
    data = json_body(endpoint, response)
    try:
        return parse(data)
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise CloudUnavailableError(
            f"malformed response: {type(exc).__name__}: {exc}",
            endpoint=endpoint,
            status_code=response.status_code,
            request_id=request_id(response),
        ) from exc


def _images(data: dict[str, Any]) -> list[Image]:
    return [Image.model_validate(item) for item in data["images"]]


def _job_id(data: dict[str, Any]) -> str:
    job_id = data.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise KeyError("job_id")
    return job_id


def _image_quota(data: dict[str, Any]) -> ImageQuota:
    resources = data["quotas"]["resources"]
    return ImageQuota.model_validate(next(r for r in resources if r.get("type") == "image"))


def _key_page(data: dict[str, Any]) -> tuple[list[KmsKey], str | None]:
    """A page of keys and the marker of the next page (``None`` on the last page)."""
    keys = [KmsKey.model_validate(item) for item in data["key_details"]]
    truncated = str(data.get("truncated", "false")).lower() == "true"
    return keys, (data.get("next_marker") or None) if truncated else None


def _key_info(data: dict[str, Any]) -> KmsKey:
    return KmsKey.model_validate(data["key_info"])


def _nothing(_: dict[str, Any]) -> None:
    return None


def _tags(data: dict[str, Any]) -> dict[str, str]:
    return {str(tag["key"]): str(tag.get("value") or "") for tag in data["tags"]}


def _member_page(data: dict[str, Any]) -> tuple[list[ImageMember], str | None]:
    members = [ImageMember.model_validate(item) for item in data["members"]]
    return members, (data.get("page_info") or {}).get("next_marker") or None


def _first_project_id(data: dict[str, Any]) -> str | None:
    projects = data["projects"]
    return str(projects[0]["id"]) if projects else None


def shared_http(
    *,
    connect_timeout: float,
    read_timeout: float,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The HTTP side of ImsClients: timeouts and headers, no credentials (each client sends its own). Each thread
    keeps its own connections (``ThreadPools``): one closed for want of room would cost the next call a new TCP and
    TLS handshake, two or three round trips 150-300 ms long, and one pool for every thread costs CPU per request."""
    return httpx.Client(
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout),
        transport=transport or ThreadPools(),
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
    )


# The settings' secrets that a file may rotate under a running worker (temporary AK/SK with their token).
ROTATED = ("access_key", "secret_key", "security_token")


class ImsClient:
    """One account's IMS/KMS client.

    ``connect_timeout`` and ``read_timeout`` always apply (write uses the read timeout, the connection pool the
    connect timeout). ``transport`` replaces the network, for tests. ``http`` lets many accounts' clients share one
    ``httpx.Client`` (``shared_http``), whose connections to each endpoint (kept per thread) serve all of them:
    with a client each, 200 accounts meant a TLS context (the CA bundle loaded: about 17 ms of CPU), an environment
    scan for proxies and a new connection per account, and the idle connections were closed by the server between
    an account's calls. Credentials go with each request: AK/SK signing when the account has an access key (with
    its security token for a temporary one; read again when their ``…_FILE`` files change), temporary AK/SK from the
    metadata service (``metadata``: the process's shared reader of it, one made for this client when not given),
    otherwise an IAM token bought with the user's password.
    """

    def __init__(
        self,
        account: AccountSettings,
        *,
        connect_timeout: float,
        read_timeout: float,
        transport: httpx.BaseTransport | None = None,
        hooks: ClientHooks | None = None,
        http: httpx.Client | None = None,
        metadata: MetadataCredentials | None = None,
    ) -> None:
        self._account = account
        self._hooks = hooks or ClientHooks()
        self._own_metadata: MetadataCredentials | None = None
        self._auth = self._make_auth(account, metadata)
        self._owns_http = http is None
        self._http = http or shared_http(
            connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport
        )

    def _make_auth(self, account: AccountSettings, metadata: MetadataCredentials | None) -> AkSkAuth | TokenAuth:
        if account.credentials_source is CredentialsSource.METADATA:
            if metadata is None:
                metadata = self._own_metadata = MetadataCredentials.from_endpoint(account.metadata_endpoint)
            return AkSkAuth(metadata, account.project_id)
        if account.access_key and account.secret_key:
            given = Credentials(account.access_key, account.secret_key, account.security_token)
            files = {name: path for name, path in account.secret_files.items() if name in ROTATED}
            source = FileCredentials(given, files) if files else StaticCredentials(given)
            return AkSkAuth(source, account.project_id)
        assert account.iam_user and account.iam_password and account.iam_domain and account.iam_endpoint
        return TokenAuth(
            account.iam_endpoint,
            account.iam_user,
            account.iam_password,
            account.iam_domain,
            account.project_id,
            hooks=self._hooks,
        )

    # -- images -------------------------------------------------------------------------------------------------

    def list_images(self, **filters: Any) -> list[Image]:
        """One page of ``GET /v2/cloudimages``; ``filters`` are its query parameters (``limit``, ``marker``, ...)."""
        return self._list("list_images", filters)

    def iter_images(self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any) -> Iterator[Image]:
        """Every image matching ``filters`` (``image_pages``, one after the other)."""
        for page in self.image_pages(page_size=page_size, **filters):
            yield from page

    def image_pages(self, *, page_size: int = DEFAULT_PAGE_SIZE, **filters: Any) -> Iterator[list[Image]]:
        """The pages of images matching ``filters``: the answer has no next link, so the last ID of a page is the
        next ``marker``, until a page comes back shorter than ``page_size`` (the last one)."""
        marker = filters.pop("marker", None)
        while True:
            page = self._list("list_images", {**filters, "limit": page_size, "marker": marker})
            yield page
            if len(page) < page_size:
                return
            if page[-1].id == marker:
                raise CloudUnavailableError("image paging did not advance past the marker", endpoint="list_images")
            marker = page[-1].id

    def get_image(self, image_id: str) -> Image | None:
        """The image, or ``None`` when it does not exist or is not visible to the project."""
        images = self._list("show_image", {"id": image_id})
        return next((image for image in images if image.id == image_id), None)

    def _list(self, endpoint: str, filters: dict[str, Any]) -> list[Image]:
        params = {key: value for key, value in filters.items() if value is not None}
        return self._call(endpoint, "GET", f"{self._account.ims_endpoint}/v2/cloudimages", _images, params=params)

    def get_quota(self) -> ImageQuota:
        """The project's private-image quota and how much of it is used (in the client's region)."""
        return self._call("quota", "GET", f"{self._account.ims_endpoint}/v1/cloudimages/quota", _image_quota)

    # -- copy and jobs ------------------------------------------------------------------------------------------

    def copy_image(
        self,
        image_id: str,
        *,
        name: str,
        description: str | None = None,
        cmk_id: str | None = None,
        enterprise_project_id: str | None = None,
    ) -> str:
        """Start an in-region copy and return its job ID.

        Empty optional fields are left out, as the SDK and Terraform do. A 2xx answer without a ``job_id`` is a
        ``CloudUnavailableError``: the copy may have started, so the caller must look before it copies again.
        """
        body: dict[str, str] = {"name": name}
        optional = {"description": description, "cmk_id": cmk_id, "enterprise_project_id": enterprise_project_id}
        body.update({key: value for key, value in optional.items() if value})
        url = f"{self._account.ims_endpoint}/v1/cloudimages/{_segment(image_id)}/copy"
        return self._call("copy", "POST", url, _job_id, body=body)

    def copy_image_cross_region(
        self,
        image_id: str,
        *,
        name: str,
        region: str,
        project_name: str,
        agency_name: str,
        description: str | None = None,
    ) -> str:
        """Start a copy into another region's project (docs/ims-api.md §3) and return its job ID, a job of this
        (the source) region. As with ``copy_image``, a 2xx without a ``job_id`` means "look before copying again"."""
        body = {"name": name, "region": region, "project_name": project_name, "agency_name": agency_name}
        if description:
            body["description"] = description
        url = f"{self._account.ims_endpoint}/v1/cloudimages/{_segment(image_id)}/cross_region_copy"
        return self._call("cross_region_copy", "POST", url, _job_id, body=body)

    def get_job(self, job_id: str) -> Job:
        url = f"{self._account.ims_endpoint}/v1/{self._account.project_id}/jobs/{_segment(job_id)}"
        return self._call("job", "GET", url, Job.model_validate)

    def get_job_progress(self, job_id: str) -> Job:
        """The job with ``entities.process_percent`` and ``current_task`` (the progress extension)."""
        url = f"{self._account.ims_endpoint}/v1/cloudimages/job/{_segment(job_id)}"
        return self._call("job_progress", "GET", url, Job.model_validate)

    # -- tags and members ---------------------------------------------------------------------------------------

    def tag_image(self, image_id: str, tags: dict[str, str]) -> None:
        """Add or overwrite tags on an image (docs/ims-api.md §9): idempotent, all of them or none."""
        url = f"{self._account.ims_endpoint}/v2/{self._account.project_id}/images/{_segment(image_id)}/tags/action"
        body = {"action": "create", "tags": [{"key": key, "value": value} for key, value in tags.items()]}
        self._call("tag_action", "POST", url, _nothing, body=body, empty_ok=True)

    def delete_image(self, image_id: str) -> None:
        """Delete an image the project owns: ``DELETE /v2/images/{image_id}``, answered ``204`` once it is gone
        (docs/ims-api.md; ims-contract §12). IMS refuses one being made (IMG.0090), a protected one (IMG.0091)."""
        url = f"{self._account.ims_endpoint}/v2/images/{_segment(image_id)}"
        self._call("delete_image", "DELETE", url, _nothing, empty_ok=True)

    def image_tags(self, image_id: str) -> dict[str, str]:
        url = f"{self._account.ims_endpoint}/v2/{self._account.project_id}/images/{_segment(image_id)}/tags"
        return self._call("list_tags", "GET", url, _tags)

    def add_members(self, image_ids: list[str], project_ids: list[str]) -> str:
        """Share images with projects (asynchronous, docs/ims-api.md §9); returns the member job's ID."""
        url = f"{self._account.ims_endpoint}/v1/cloudimages/members"
        return self._call("add_members", "POST", url, _job_id, body={"images": image_ids, "projects": project_ids})

    def remove_members(self, image_ids: list[str], project_ids: list[str]) -> str:
        """Stop sharing images with projects (``DELETE /v1/cloudimages/members``, asynchronous, docs/ims-api.md §9);
        returns the member job's ID."""
        url = f"{self._account.ims_endpoint}/v1/cloudimages/members"
        return self._call("remove_members", "DELETE", url, _job_id, body={"images": image_ids, "projects": project_ids})

    def update_member_status(self, image_ids: list[str], status: str, *, vault_id: str | None = None) -> str:
        """Accept (``"accepted"``) or reject (``"rejected"``) images shared with this project, as the member: IMS
        takes the answer only from the member itself, its own project named in the body (docs/ims-api.md §9).
        Asynchronous: returns the member job's ID (``imsUpdateImageMembersJob``), polled with ``get_job``; a shared
        full-ECS image is accepted into a CBR vault (``vault_id``)."""
        if status not in MEMBER_ANSWERS:
            raise ValueError(f"a member answers accepted or rejected, not {status!r}")
        url = f"{self._account.ims_endpoint}/v1/cloudimages/members"
        body = {"images": image_ids, "project_id": self._account.project_id, "status": status, "vault_id": vault_id}
        return self._call("update_members", "PUT", url, _job_id, body=body)

    def shared_images(self, member_status: str = "accepted", *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Image]:
        """Images of other projects shared with this one whose member status here is ``member_status``
        (``visibility=shared&member_status=…``, docs/ims-api.md §9). The project's own shared-out images answer the
        same filter; their ``owner`` (this project) tells them apart, and they are left out."""
        if member_status not in MEMBER_STATUSES:
            raise ValueError(f"member_status is one of {', '.join(MEMBER_STATUSES)}, not {member_status!r}")
        images = self.iter_images(page_size=page_size, visibility="shared", member_status=member_status)
        return (image for image in images if image.owner != self._account.project_id)

    def copy_shared_image(
        self, image_id: str, *, name: str, description: str | None = None, cmk_id: str | None = None
    ) -> str:
        """Copy an image shared with this project, once accepted, into a private image of its own, encrypted with
        this project's ``cmk_id`` if given (docs/ims-api.md §9), and return the job ID. It is the in-region copy,
        made by the member, without ``enterprise_project_id``: IMS copies shared images in IAM projects only."""
        return self.copy_image(image_id, name=name, description=description, cmk_id=cmk_id)

    def image_members(self, image_id: str) -> list[ImageMember]:
        """Every member of an image, page by page (``page_info.next_marker``)."""
        base = f"{self._account.ims_endpoint}/v1/{self._account.project_id}/cloudimages/{_segment(image_id)}/members"
        members: list[ImageMember] = []
        marker: str | None = None
        while True:
            params = {"limit": DEFAULT_PAGE_SIZE, **({"marker": marker} if marker else {})}
            page, next_marker = self._call("list_members", "GET", base, _member_page, params=params)
            members.extend(page)
            if next_marker is None:
                return members
            if next_marker == marker:
                raise CloudUnavailableError("member paging did not advance past the marker", endpoint="list_members")
            marker = next_marker

    # -- IAM ----------------------------------------------------------------------------------------------------

    def find_project_id(self, name: str, iam_endpoint: str) -> str | None:
        """The ID of the project called ``name`` (e.g. a region's default project, named after the region); None
        when IAM knows no such project.

        AK/SK: IAM's project list, ``GET /v3/projects?name=``, signed without a project (what the official SDK does
        to find a region's project ID). An IAM user: a token scoped to the project by name, whose body names its ID
        (what Terraform's password authentication does for another region).
        """
        if isinstance(self._auth, AkSkAuth):
            url = f"{iam_endpoint}/v3/projects"
            params = {"name": name}
            return self._call("list_projects", "GET", url, _first_project_id, params=params, unscoped=True)
        account = self._account
        assert account.iam_user and account.iam_password and account.iam_domain
        scoped = TokenAuth(
            iam_endpoint,
            account.iam_user,
            account.iam_password,
            account.iam_domain,
            None,
            project_name=name,
            hooks=self._hooks,
        )
        try:
            scoped.issue(self._http)
        except ImsRefusedError as exc:  # IAM's 400/404: no project of that name
            if exc.status_code in (400, 404):
                return None
            raise
        return scoped.project_id

    def authenticate(self) -> None:
        """Make sure the credentials work now: an IAM user's token is obtained (and cached) if it is not held.
        Nothing to do for AK/SK, whose every request is signed."""
        if isinstance(self._auth, TokenAuth):
            self._auth.issue(self._http)

    # -- KMS ----------------------------------------------------------------------------------------------------

    def list_keys(self, key_state: str | None = None) -> list[KmsKey]:
        """Every key of the project (of the default spec, AES_256), following ``next_marker`` while truncated."""
        url = f"{self._account.kms_endpoint}/v1.0/{self._account.project_id}/kms/list-keys"
        keys: list[KmsKey] = []
        marker: str | None = None
        while True:
            body = {"limit": _KEY_PAGE_SIZE, "marker": marker, "key_state": key_state}
            page, next_marker = self._call("list_keys", "POST", url, _key_page, body=body)
            keys.extend(page)
            if next_marker is None:
                return keys
            if next_marker == marker:
                raise CloudUnavailableError("key paging did not advance past the marker", endpoint="list_keys")
            marker = next_marker

    def describe_key(self, key_id: str) -> KmsKey | None:
        """The key, or ``None`` when KMS does not know it (400 ``KMS.0205`` "Invalid key ID.", or a 404)."""
        url = f"{self._account.kms_endpoint}/v1.0/{self._account.project_id}/kms/describe-key"
        try:
            return self._call("describe_key", "POST", url, _key_info, body={"key_id": key_id})
        except ImsRefusedError as exc:
            if exc.code == _KMS_INVALID_KEY_ID or exc.status_code == 404:
                return None
            raise

    def find_key(self, ref: str) -> KmsKey | None:
        """A key by ID (a UUID) or by alias (e.g. ``ims/default``); ``None`` when there is no such key."""
        if is_uuid(ref):
            return self.describe_key(ref)
        return next((key for key in self.list_keys() if key.key_alias == ref), None)

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _call(
        self,
        endpoint: str,
        method: str,
        url: str,
        parse: Callable[[dict[str, Any]], T],
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        empty_ok: bool = False,
        unscoped: bool = False,
    ) -> T:
        """One call. ``empty_ok``: a 2xx with no body (a 204) is the answer; ``unscoped``: an AK/SK signature without
        ``X-Project-Id`` (IAM's account-wide calls)."""
        self._hooks.before_request(endpoint)
        headers = {}
        content = None
        if body is not None:
            headers["Content-Type"] = JSON_UTF8
            clean = {key: value for key, value in body.items() if value is not None}
            content = json.dumps(clean, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        extensions = {UNSCOPED: True} if unscoped else None
        try:
            request = self._http.build_request(
                method, url, params=params, headers=headers, content=content, extensions=extensions
            )
            response = self._http.send(request, auth=self._auth)
        except httpx.TransportError as exc:
            label = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
            failed = endpoint
            if _is_token_failure(exc):
                self._hooks.after_response("token", label)
                failed, label = "token", "token_error"
            self._hooks.after_response(endpoint, label)
            raise _transport_error(failed, exc) from exc
        except ReplicatorError:  # the token could not be obtained; the call itself was never sent
            self._hooks.after_response(endpoint, "token_error")
            raise
        try:
            if not response.is_success:
                raise error_from_response(endpoint, response, self._auth.secret_values())
            empty = empty_ok and not response.content.strip()
            result = parse({}) if empty else _parsed(endpoint, response, parse)
        except ReplicatorError as error:
            self._hooks.after_response(endpoint, outcome(response, error))
            raise
        self._hooks.after_response(endpoint, outcome(response, None))
        return result

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        if self._own_metadata is not None:
            self._own_metadata.close()

    def __enter__(self) -> ImsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is_token_failure(exc: httpx.TransportError) -> bool:
    try:
        return is_token_request(exc.request)
    except RuntimeError:  # httpx raises when no request was attached
        return False


def _transport_error(endpoint: str, exc: httpx.TransportError) -> CloudUnavailableError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return CloudUnavailableError(f"{kind} ({type(exc).__name__})", endpoint=endpoint)
