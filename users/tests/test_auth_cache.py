"""Authentication reads the user through a cache; a change to the user must apply at once."""

import pytest

from foundation.cache import peek
from users.authentication import _USER_FIELDS, USER_AUTH_CACHE
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_deactivated_user_is_refused_on_the_next_request_even_when_cached(make_user, api_client):
    user = make_user()
    client = api_client(user)
    assert client.get("/api/v1/auth/me").status_code == 200
    assert peek(USER_AUTH_CACHE, user.id)["is_active"] is True  # really served from the cache

    user.is_active = False
    user.save()  # commits; the cached row is retired on commit

    response = client.get("/api/v1/wallets")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_deleted_user_is_refused_even_when_cached(make_user, api_client):
    user = make_user()
    client = api_client(user)
    assert client.get("/api/v1/wallets").status_code == 200
    user.delete()
    assert client.get("/api/v1/wallets").status_code == 401


def test_authenticated_requests_need_no_user_query_once_cached(
    make_user, api_client, django_assert_num_queries
):
    user = make_user()
    client = api_client(user)
    client.get("/api/v1/auth/me")
    with django_assert_num_queries(0):
        response = client.get("/api/v1/auth/me")
    assert response.json()["username"] == user.username


def test_the_cached_columns_follow_the_models_field_order():
    # Model.from_db() maps a partial load's values onto the model's fields in their order.
    order = [field.attname for field in User._meta.concrete_fields]
    assert sorted(_USER_FIELDS, key=order.index) == list(_USER_FIELDS)


# --- Access tokens checked once per process ------------------------------------------


def _bearer(client) -> str:
    return client._credentials["HTTP_AUTHORIZATION"]


def test_a_checked_token_is_not_verified_again(make_user, api_client, monkeypatch):
    from rest_framework_simplejwt.backends import TokenBackend

    client = api_client(make_user())
    assert client.get("/api/v1/auth/me").status_code == 200

    def no_more_decoding(*args, **kwargs):
        raise AssertionError("the token was decoded again")

    monkeypatch.setattr(TokenBackend, "decode", no_more_decoding)
    assert client.get("/api/v1/auth/me").status_code == 200


def test_a_checked_token_is_refused_once_it_expires(make_user, api_client, monkeypatch):
    from datetime import timedelta

    from rest_framework_simplejwt.utils import aware_utcnow

    import users.authentication

    client = api_client(make_user())
    assert client.get("/api/v1/auth/me").status_code == 200  # checked and kept

    later = aware_utcnow() + timedelta(minutes=30)
    monkeypatch.setattr(users.authentication, "aware_utcnow", lambda: later)
    response = client.get("/api/v1/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_only_the_exact_token_that_passed_is_kept(make_user, api_client):
    from rest_framework.test import APIClient

    client = api_client(make_user())
    assert client.get("/api/v1/auth/me").status_code == 200
    header = _bearer(client)
    forged = header[:-2] + ("AA" if not header.endswith("AA") else "BB")  # another signature

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=forged)

    assert other.get("/api/v1/auth/me").status_code == 401
    assert client.get("/api/v1/auth/me").status_code == 200
