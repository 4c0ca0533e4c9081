"""Production static files: hashed names everywhere, ES-module imports included.

WhiteNoise serves hashed files with a far-future immutable Cache-Control, so a module that imported
an unhashed sibling could pair old and new code after a deploy. ``collectstatic`` runs for real
(our static dirs and Meyda from node_modules) into a temporary STATIC_ROOT.
"""

import json
import re

import pytest
from django.core.management import call_command
from django.test import override_settings

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "speakerauth.storage.ModuleManifestStaticFilesStorage"},
}
_RELATIVE_REF = re.compile(r"""(?:\bfrom\s*|new URL\(\s*)["'](\.{1,2}/[^"']+)["']""")


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("staticfiles")
    with override_settings(
        STATIC_ROOT=root,
        STORAGES=PRODUCTION_STORAGES,
        # Only our own directories (and Meyda): the admin's files add time, not coverage.
        STATICFILES_FINDERS=["django.contrib.staticfiles.finders.FileSystemFinder"],
    ):
        call_command("collectstatic", "--noinput", verbosity=0)
    manifest = json.loads((root / "staticfiles.json").read_text())["paths"]
    return root, manifest


def _relative_refs(root, manifest, name):
    return _RELATIVE_REF.findall((root / manifest[name]).read_text())


def test_module_imports_point_at_hashed_files(collected):
    root, manifest = collected
    refs = _relative_refs(root, manifest, "js/enroll.js")

    assert "./" + manifest["js/api.js"].removeprefix("js/") in refs
    assert all(re.search(r"\.[0-9a-f]{12}\.js$", ref) for ref in refs), refs


def test_worklet_url_points_at_hashed_file(collected):
    root, manifest = collected
    refs = _relative_refs(root, manifest, "js/recorder.js")

    assert "./" + manifest["js/capture-worklet.js"].removeprefix("js/") in refs


def test_no_hashed_module_references_an_unhashed_file(collected):
    root, manifest = collected
    hashed = set(manifest.values())
    unhashed = [
        (name, ref)
        for name in manifest
        if name.startswith("js/") and name.endswith(".js")
        for ref in _relative_refs(root, manifest, name)
        if "js/" + ref.removeprefix("./") not in hashed
    ]

    assert not unhashed


def test_meyda_from_npm_is_collected_hashed_and_compressed(collected):
    root, manifest = collected
    hashed = manifest["vendor/meyda/meyda.min.js"]

    assert re.fullmatch(r"vendor/meyda/meyda\.min\.[0-9a-f]{12}\.js", hashed)
    assert (root / f"{hashed}.gz").is_file()
