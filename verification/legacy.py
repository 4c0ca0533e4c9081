"""The seed's command-line verbs at the site root: ``PUT /train``, ``PUT /test``, ``PUT /score``.

Same bodies and answers as the v1 endpoints, for ``curl -XPUT --data @body.json``. curl's
``--data`` labels the body ``application/x-www-form-urlencoded``, so that type is read as JSON
here too. Token or HTTP Basic authentication only: no session, hence no CSRF exposure.
"""

from drf_spectacular.utils import extend_schema
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts.lockout import PasswordBasicAuthentication
from verification import api


class CurlFormJSONParser(api.StrictJSONParser):
    """JSON sent by ``curl --data`` without a Content-Type header."""

    media_type = "application/x-www-form-urlencoded"


class _LegacyView(APIView):
    authentication_classes = [TokenAuthentication, PasswordBasicAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [api.StrictJSONParser, CurlFormJSONParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "verification"
    http_method_names = ["put", "post", "options"]
    schema = api.RequiredBodySchema()


# Documented like their v1 twins, grouped apart.
LEGACY = extend_schema(tags=["legacy"])


class TrainView(_LegacyView):
    """Alias of POST /api/v1/voiceprint/train/."""

    @LEGACY
    @api.TRAIN_SCHEMA
    def put(self, request: Request) -> Response:
        return api.handle_train(request)

    post = put


class TestView(_LegacyView):
    """Alias of POST /api/v1/voiceprint/test/."""

    @LEGACY
    @api.TEST_SCHEMA
    def put(self, request: Request) -> Response:
        return api.handle_test(request)

    post = put


class ScoreView(_LegacyView):
    """Alias of POST /api/v1/voiceprint/score/."""

    @LEGACY
    @api.SCORE_SCHEMA
    def put(self, request: Request) -> Response:
        return api.handle_score(request)

    post = put
