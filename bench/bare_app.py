"""The baseline for the query benchmark: FastAPI returning a constant JSON body, on the
same server settings as the service."""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from starlette.responses import Response

BODY = orjson.dumps({"account_id": "acc", "tier": "micro", "credibility": 80.0})
app = FastAPI()


@app.get("/accounts/{account_id}/score")
async def constant(account_id: str) -> Response:
    return Response(BODY, media_type="application/json")
