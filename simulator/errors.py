"""Error answers in the shapes a client meets: IMS (``error.code``), the API gateway, KMS and IAM."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

# IMS codes and their messages (https://support.huaweicloud.com/intl/en-us/api-ims/ims_03_0908.html).
IMS_MESSAGES = {
    "IMG.0001": "The request message format is invalid.",
    "IMG.0002": "The image name contains more than 128 characters.",
    "IMG.0003": "The image name format is invalid.",
    "IMG.0004": "The description contains more than 1024 characters.",
    "IMG.0007": "The request body is empty.",
    "IMG.0013": "The image name is not specified.",
    "IMG.0015": "The number of private images has reached the maximum allowed.",
    "IMG.0027": "The image ID in the request does not exist.",
    "IMG.0046": "The image is unavailable.",
    "IMG.0047": "This operation can be performed only by the image owner.",
    "IMG.0054": "The image description format is invalid.",
    # Simulator choice: no copy-specific code exists for > 128 GB; IMG.0059 is the image-file size code.
    "IMG.0059": "The size of the image file exceeds the maximum allowed.",
    "IMG.0060": "The number of tasks exceeds the flow control limit.",
    "IMG.0067": "The project ID is incorrect.",
    "IMG.0076": "You cannot share an image with yourself.",
    "IMG.0088": "The number of shared images has reached the maximum allowed.",
    "IMG.0090": "The image being created cannot be deleted.",
    "IMG.0091": "The protected image cannot be deleted.",
    "IMG.0092": "The image can only be deleted by the owner.",
    "IMG.0095": "The KMS key does not exist.",
    "IMG.0097": "The key is not enabled.",
    "IMG.0098": "The encrypted image cannot be shared or published in Marketplace.",
    "IMG.0104": "Enter the project name if there are multiple projects in the same region.",
    "IMG.0105": "The operation is not supported.",
    "IMG.0108": "The tenant ID was not found in the current region.",
    "IMG.0115": "The image tag is invalid.",
    "IMG.0116": "The number of image tags exceeds the quota.",
    "IMG.0130": "The full-ECS image cannot be exported or replicated.",
    "IMG.0142": "Replication must be performed across regions.",
    "IMG.0143": "An encrypted image cannot be replicated cross regions.",
    "IMG.0144": "The image does not exist.",
    "IMG.0145": "The project name is incorrect.",
    "IMG.0146": "The size of the image to be replicated across regions exceeds the upper limit.",
    "IMG.0147": "The entered region information is incorrect.",
    "IMG.0149": "The number of image replicated cross regions exceeds the maximum number allowed at a time.",
    "IMG.0151": "The agency does not have the needed permissions to perform this operation on the target project.",
    "IMG.0155": "Failed to check the enterprise project ID validity.",
    "IMG.0167": "This operation cannot be performed for ISO images.",
    "IMG.0177": "The source and target tenants reside in different regions.",
    "IMG.0179": "The token of the source image agency is invalid.",
    "IMG.0184": "Failed to obtain the vault.",
    "IMG.0196": "The image cannot be replicated because it is not accepted by the recipient.",
    "IMG.0197": "Failed to replicate the shared image because it is encrypted using KMS.",
    # Simulator invention: Huawei documents no code for an unknown job.
    "IMG.0404": "The job does not exist.",
}

# API-gateway messages (https://support.huaweicloud.com/intl/en-us/devg-apisign/api-sign-errorcode.html).
AUTH_FAILED = "Incorrect IAM authentication information: verify aksk signature fail"
AK_LOCKED = "Incorrect IAM authentication information: AK access failed to reach the limit,forbidden"
AK_UNKNOWN = "Incorrect IAM authentication information: Get secretKey failed,ak:{ak},err:ak not exist"
TOKEN_INVALID = "Incorrect IAM authentication information: decrypt token fail"
# A temporary AK/SK past its expiry (https://support.huaweicloud.com/intl/en-us/sis_faq/sis_04_0087.html).
AK_EXPIRED = "Incorrect IAM authentication information: calc ak sk signature fail:signature expired"
TOKEN_EXPIRED = "The token must be updated."
THROTTLED = "The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:1 second"
NO_SUCH_API = "The API does not exist or has not been published in the environment"
NOT_AUTHORIZED = "The IAM user is not authorized to access the API."
PROJECT_UNAVAILABLE = "The project is unavailable."


class ApiError(Exception):
    """An error answer; ``body`` receives the request ID because the gateway shape carries it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def body(self, request_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def response(self, request_id: str) -> JSONResponse:
        return JSONResponse(self.body(request_id), status_code=self.status)


class ImsError(ApiError):
    """``{"error": {"code": "IMG.xxxx", "message": ...}}``, HTTP 400 unless told otherwise."""

    def __init__(self, code: str, status: int = 400) -> None:
        super().__init__(status, IMS_MESSAGES[code])
        self.code = code

    def body(self, request_id: str) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": str(self)}}


class GatewayError(ApiError):
    """``{"error_code": "APIGW.xxxx", "error_msg": ..., "request_id": ...}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, message)
        self.code = code

    def body(self, request_id: str) -> dict[str, Any]:
        return {"error_code": self.code, "error_msg": str(self), "request_id": request_id}


class KmsError(ApiError):
    """``{"error": {"error_code": "KMS.xxxx", "error_msg": ...}}`` (the DEW error table's codes)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(status, message)
        self.code = code

    def body(self, request_id: str) -> dict[str, Any]:
        return {"error": {"error_code": self.code, "error_msg": str(self)}}


class IamError(ApiError):
    """Keystone's shape, which IAM keeps: ``{"error": {"code": 401, "message": ..., "title": ...}}``."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(status, message)
        self.title = title

    def body(self, request_id: str) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": str(self), "title": self.title}}


def auth_failed(message: str = AUTH_FAILED) -> GatewayError:
    return GatewayError(401, "APIGW.0301", message)


def token_expired() -> GatewayError:
    return GatewayError(401, "APIGW.0307", TOKEN_EXPIRED)


def throttled(limit: float) -> GatewayError:
    shown = int(limit) if float(limit).is_integer() else limit
    return GatewayError(429, "APIGW.0308", THROTTLED.format(limit=shown))


def no_such_api() -> GatewayError:
    return GatewayError(404, "APIGW.0101", NO_SUCH_API)


def not_authorized() -> GatewayError:
    return GatewayError(403, "APIGW.0302", NOT_AUTHORIZED)


def project_unavailable() -> GatewayError:
    return GatewayError(403, "APIGW.0310", PROJECT_UNAVAILABLE)
