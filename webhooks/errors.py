from foundation.errors import ServiceError


class WebhookEndpointNotFound(ServiceError):
    code = "not_found"
    status = 404
    title = "Webhook endpoint not found"


class WebhookUrlInvalid(ServiceError):
    """A URL of the documented shape this service still cannot post to (a port out of
    range, a host that is no valid name, http where https is required). 422, as the other
    refusals below: the request is well-formed, what it names cannot be used."""

    code = "webhook_url_invalid"
    status = 422
    title = "Webhook URL not accepted"


class WebhookUrlForbidden(ServiceError):
    """The URL's host resolves to an address webhooks may not reach: private, loopback,
    link-local, multicast or otherwise not public (server-side request forgery)."""

    code = "webhook_url_forbidden"
    status = 422
    title = "Webhook URL points to a forbidden address"


class WebhookUrlUnresolvable(ServiceError):
    code = "webhook_url_unresolvable"
    status = 422
    title = "Webhook URL's host does not resolve"


class WebhookEndpointLimit(ServiceError):
    code = "webhook_endpoint_limit"
    status = 409
    title = "Too many webhook endpoints"
