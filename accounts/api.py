"""Account endpoints of the API: token issue and the caller's identity."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User


class MeSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "username", "email", "is_staff", "date_joined")
        read_only_fields = fields


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class TokenView(ObtainAuthToken):
    """Exchange a username and password for an API token (send it as `Authorization: Token …`)."""

    @extend_schema(responses={200: TokenResponseSerializer})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


@extend_schema(responses={200: MeSerializer})
@api_view(["GET"])
def me(request: Request) -> Response:
    """The signed-in caller."""
    return Response(MeSerializer(request.user).data)
