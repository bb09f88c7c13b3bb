"""`GET auth/me` renders from a plain dict; it must say what MeSerializer says in the OpenAPI document."""

import json

import pytest
from rest_framework.renderers import JSONRenderer

from users.serializers import MeSerializer, me_data


@pytest.mark.django_db
def test_me_data_renders_exactly_as_its_serializer(make_user):
    alice = make_user()
    render = JSONRenderer().render

    assert json.loads(render(me_data(alice))) == json.loads(render(MeSerializer(alice).data))
