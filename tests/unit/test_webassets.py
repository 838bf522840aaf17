"""The pinned browser assets: every file the Great Expectations templates load from a CDN has a local copy,
the copies are the bytes the templates' integrity hashes name, each package's licence is recorded and
installed, and nothing outside the served packages can be read through the asset route."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path

import great_expectations
import pytest

from churn import webassets

TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
LOADED = re.compile(r'<(?:script|link)[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>')
WEB = webassets.REPO / "web"


@pytest.fixture(autouse=True)
def assets_installed() -> None:
    if not webassets.installed():
        reason = "web assets not installed (make setup runs npm ci in web/)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def template_loads() -> dict[str, str]:
    """Every URL a GX template loads as a script or stylesheet, with its tag."""
    found = {}
    for template in TEMPLATES.rglob("*.j2"):
        for match in LOADED.finditer(template.read_text()):
            found[match.group(1)] = match.group(0)
    return found


def test_every_file_the_data_docs_templates_load_has_a_local_copy() -> None:
    loads = template_loads()
    assert len(loads) >= 10, loads  # the templates were found and read
    missing = sorted(set(loads) - set(webassets.CDN_FILES))
    assert missing == [], f"a GX upgrade loads new CDN files; add them to web/ and CDN_FILES: {missing}"
    for path in webassets.CDN_FILES.values():
        assert (webassets.assets_dir() / path).is_file(), path


def test_local_copies_match_the_templates_integrity_hashes() -> None:
    checked = 0
    for url, tag in template_loads().items():
        integrity = re.search(r'integrity="(sha\d+)-([^"]+)"', tag)
        if not integrity:
            continue
        algorithm, expected = integrity.groups()
        body = (webassets.assets_dir() / webassets.CDN_FILES[url]).read_bytes()
        assert base64.b64encode(hashlib.new(algorithm, body).digest()).decode() == expected, url
        checked += 1
    assert checked >= 2  # popper and bootstrap's scripts carry integrity attributes


def test_every_served_package_is_pinned_and_its_licence_recorded_and_installed() -> None:
    lock = json.loads((WEB / "package-lock.json").read_text())["packages"]
    table = {
        row[0].strip(): (row[1].strip(), row[2].strip())
        for row in (line.strip("|").split("|") for line in (WEB / "LICENSES.md").read_text().splitlines())
        if len(row) == 4 and not row[0].strip().startswith(("package", "---"))
    }
    packages = webassets.SERVED_PACKAGES | {webassets.SWAGGER}
    for package in packages:
        installed = json.loads((webassets.assets_dir() / package / "package.json").read_text())
        locked = lock[f"node_modules/{package}"]
        assert locked["version"] == installed["version"] and locked["integrity"].startswith("sha512-")
        assert table[package] == (installed["version"], installed["license"]), package
        folder = webassets.assets_dir() / package
        texts = [p for p in folder.iterdir() if p.name.upper().startswith("LICEN")]
        if package == "popper.js":  # no licence file: the licence is the served file's header
            assert "MIT License" in (folder / "dist/umd/popper.min.js").read_text()[:300]
        else:
            assert texts, f"{package} ships no licence file"


def test_a_page_is_rewritten_to_the_local_copies() -> None:
    page = "\n".join(template_loads().values()) + (
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1">'
        '<a href="https://greatexpectations.io">GX</a>'
    )
    rewritten = webassets.offline_html(page, "/churn-reports/_assets")
    loaded = re.findall(r'(?:src|href)="([^"]+)"', rewritten)
    assert [url for url in loaded if url.startswith("http")] == [
        "https://greatexpectations.io"
    ]  # a link only
    for url in loaded[:-1]:
        body, content_type = webassets.read_asset(url.removeprefix("/churn-reports/_assets/"))
        assert body and content_type


@pytest.mark.parametrize(
    "path",
    ["semver/package.json", "vega/../semver/package.json", "../package.json", "jquery/../../package.json",
     "/etc/passwd", "bootstrap//dist/css/bootstrap.min.css", "great_expectations/other.png"],
)  # fmt: skip
def test_the_asset_route_serves_only_files_of_the_served_packages(path: str) -> None:
    with pytest.raises(webassets.AssetNotFoundError):
        webassets.read_asset(path)


def test_swagger_ui_serves_only_the_files_docs_loads() -> None:
    assert webassets.swagger_installed()
    for name in webassets.SWAGGER_FILES:
        assert webassets.read_swagger(name)[0]
    with pytest.raises(webassets.AssetNotFoundError):
        webassets.read_swagger("package.json")
