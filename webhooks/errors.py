from foundation.errors import ServiceError


class WebhookEndpointNotFound(ServiceError):
    code = "not_found"
    status = 404
    title = "Webhook endpoint not found"


class WebhookUrlInvalid(ServiceError):
    """Not an absolute http(s) URL this service can post to (scheme, credentials, host)."""

    code = "webhook_url_invalid"
    status = 400
    title = "Webhook URL not accepted"


class WebhookUrlForbidden(ServiceError):
    """The URL's host resolves to an address webhooks may not reach: private, loopback,
    link-local, multicast or otherwise not public (server-side request forgery)."""

    code = "webhook_url_forbidden"
    status = 400
    title = "Webhook URL points to a forbidden address"


class WebhookUrlUnresolvable(ServiceError):
    code = "webhook_url_unresolvable"
    status = 400
    title = "Webhook URL's host does not resolve"


class WebhookEndpointLimit(ServiceError):
    code = "webhook_endpoint_limit"
    status = 409
    title = "Too many webhook endpoints"
