"""Static files storage for production: WhiteNoise's compressed manifest storage, ES-module aware.

Every static file is served under a content-hashed name with a far-future, immutable cache header
(WhiteNoise), so a page must never reach an unhashed name: ``static/js`` is ES modules that import
each other (``import ... from "./api.js"``) and load the capture worklet with
``new URL("./capture-worklet.js", import.meta.url)``. Both are rewritten to the hashed names at
``collectstatic``, so a deploy can never mix an old module with a new one from the browser cache.
"""

from django.contrib.staticfiles.storage import _js_ignored_re
from whitenoise.storage import CompressedManifestStaticFilesStorage

_WORKLET_URL = (
    r"""(?P<matched>new URL\(\s*["'](?P<url>\.{1,2}/[^"']+?)["']\s*,\s*import\.meta\.url\s*\))""",
    'new URL("%(url)s", import.meta.url)',
    _js_ignored_re,
)


class ModuleManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True

    def __init__(self, *args, **kwargs):
        # Instance attribute: the base __init__ extends self.patterns, never the class's tuple.
        self.patterns = (*self.patterns, ("*.js", (_WORKLET_URL,)))
        super().__init__(*args, **kwargs)
