"""Browser files served from a pinned local copy instead of CDNs, so every page works offline: the Great
Expectations Data Docs (served by the Airflow plugin) and the API's Swagger UI at /docs.

Data Docs pages link Bootstrap, jQuery, bootstrap-table, Font Awesome, vega and the GX logo from five CDNs;
without internet (an air-gapped platform) a page is unstyled and its tables empty. The same files, at the
versions GX links (vega's unpinned majors at their newest release), are installed from the npm registry by
`npm ci` in `web/` (package-lock.json pins each with its integrity hash; web/LICENSES.md lists their
licences), and `offline_html` rewrites a page's CDN URLs to where the plugin serves that copy. Two scripts
keep their Subresource Integrity attributes: the copies are the same bytes (a test checks the hashes).
The pages in the lake stay as GX wrote them, so reports written before this change are served offline too.
"""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS_ENV = "CHURN_WEB_ASSETS_DIR"

# CDN URL (as the GX templates write it) -> file under node_modules
# fmt: off
CDN_FILES: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap/dist/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js":
        "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js/dist/umd/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    # GX links the 1.19.0 filter-control stylesheets beside the 1.19.1 scripts: 1.19.1's match them
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
    "https://cdn.jsdelivr.net/npm/vega@5":
        "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5":
        "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6":
        "vega-embed/build/vega-embed.min.js",
}
# fmt: on
# The GX logo the pages load from GX's S3 bucket (any query string): GX's own copy in its package
LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z_-]+\.png[^\"']*"
)
LOGO_FILE = "great_expectations/logo-long.png"
# What may be served: the packages the pages use (their stylesheets load fonts beside them), nothing else
# of node_modules


def _package(path: str) -> str:
    """The npm package a path under node_modules belongs to (`@scope/name` or `name`)."""
    parts = path.split("/")
    return "/".join(parts[:2]) if path.startswith("@") else parts[0]


SERVED_PACKAGES = frozenset(_package(path) for path in CDN_FILES.values())
# The API's Swagger UI (FastAPI's /docs loads swagger-ui-dist from a CDN by default)
SWAGGER = "swagger-ui-dist"
SWAGGER_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})


class AssetNotFoundError(LookupError):
    """No served asset at that path (outside the served packages, or not installed)."""


def assets_dir() -> Path:
    """Where `npm ci` in web/ installed the packages (CHURN_WEB_ASSETS_DIR overrides, e.g. in an image)."""
    return Path(os.environ.get(ASSETS_ENV) or REPO / "web" / "node_modules")


def installed(paths: frozenset[str] | None = None) -> bool:
    """Whether these files (default: every file the Data Docs link) are installed; pages whose files are
    not keep their CDN links."""
    root = assets_dir()
    wanted = CDN_FILES.values() if paths is None else paths
    return all((root / path).is_file() for path in wanted)


def swagger_installed() -> bool:
    """Whether the Swagger UI files /docs serves are installed."""
    return installed(frozenset(f"{SWAGGER}/{name}" for name in SWAGGER_FILES))


def read_swagger(name: str) -> tuple[bytes, str]:
    """One of the Swagger UI files /docs loads."""
    if name not in SWAGGER_FILES:
        raise AssetNotFoundError(f"no asset {name!r}")
    file = assets_dir() / SWAGGER / name
    if not file.is_file():
        raise AssetNotFoundError(f"{name} is not installed (npm ci in web/)")
    return file.read_bytes(), mimetypes.guess_type(name)[0] or "application/octet-stream"


def offline_html(page: str, prefix: str) -> str:
    """The page with every CDN URL of `CDN_FILES` and the GX logo pointing at `prefix` + the local copy;
    unchanged when the copy is not installed (a notice in the plugin's index says so)."""
    if not installed():
        return page
    for url, path in CDN_FILES.items():
        page = page.replace(f'"{url}"', f'"{prefix}/{path}"')
    return LOGO.sub(f"{prefix}/{LOGO_FILE}", page)


def read_asset(path: str) -> tuple[bytes, str]:
    """A served file's bytes and content type: a file of a served package, or the GX logo."""
    if path == LOGO_FILE:
        import great_expectations

        file = Path(great_expectations.__file__).parent / "render/view/static/images/logo-long.png"
        return file.read_bytes(), "image/png"
    parts = path.split("/")
    package = _package(path)
    if package not in SERVED_PACKAGES or ".." in parts or "" in parts:
        raise AssetNotFoundError(f"no asset {path!r}")
    root = assets_dir().resolve()
    file = (root / path).resolve()
    if not file.is_relative_to(root / package) or not file.is_file():
        raise AssetNotFoundError(f"no asset {path!r}")
    return file.read_bytes(), mimetypes.guess_type(file.name)[0] or "application/octet-stream"
