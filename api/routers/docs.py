"""GET /docs: the Swagger UI of the OpenAPI schema, its files served by this API (pinned in web/, npm)
rather than loaded from FastAPI's default CDN, so the page works on an air-gapped network. Where the files
are not installed (no npm at set-up) the page falls back to the CDN. ReDoc is not served: one interactive
reference is enough, and its bundle would add a hundred npm packages."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from churn import webassets

router = APIRouter(include_in_schema=False)
ASSETS = "/docs/assets"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """The interactive API reference."""
    title = f"{request.app.title} - docs"
    openapi_url = request.app.openapi_url or "/openapi.json"
    if not webassets.swagger_installed():
        return get_swagger_ui_html(openapi_url=openapi_url, title=title)
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )


@router.get(ASSETS + "/{name}")
async def swagger_file(name: str) -> Response:
    """A Swagger UI file (only the three the page loads)."""
    try:
        body, content_type = webassets.read_swagger(name)
    except webassets.AssetNotFoundError as error:
        raise HTTPException(404, str(error)) from None
    return Response(body, media_type=content_type, headers={"Cache-Control": "max-age=86400"})
