from foundation.errors import ServiceError


class EventNotFound(ServiceError):
    code = "not_found"
    status = 404
    title = "Event not found"
