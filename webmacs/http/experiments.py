"""``/api/v1/experiments``: create = start, idempotent stop, streamed CSV export (§4.3)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from webmacs.actors.exporter import stream_body
from webmacs.csv_export import content_disposition, header_line
from webmacs.http.bodies import EXPERIMENT_CREATE, EXPERIMENT_UPDATE
from webmacs.http.context import services, tree
from webmacs.http.errors import not_found
from webmacs.http.guards import current_operator, current_user
from webmacs.http.requests import json_body, pagination
from webmacs.http.responses import experiment_json, json_response, page_body, success
from webmacs.http.routing import route
from webmacs.validation import is_public_id, read_body

bp = Blueprint("experiments", __name__, url_prefix="/api/v1/experiments")


@route(bp, "", ["GET"])
async def list_experiments() -> Any:
    await current_user()
    number, size = pagination()
    page = await services().repos.experiments.page((number - 1) * size, size)
    return json_response(page_body(page, number, size, experiment_json))


@route(bp, "", ["POST"])
async def create_experiment() -> Any:
    user = await current_operator()
    name = read_body(EXPERIMENT_CREATE, await json_body())["name"]
    record = await tree().create_experiment(name, user.public_id)
    return success("Experiment successfully created.", 201, public_id=record.public_id)


@route(bp, "/<public_id>", ["GET"])
async def get_experiment(public_id: str) -> Any:
    await current_user()
    repo = services().repos.experiments
    record = await repo.get(public_id) if is_public_id(public_id) else None
    if record is None:
        raise not_found("Experiment", public_id)
    return json_response(experiment_json(record))


@route(bp, "/<public_id>", ["PUT"])
async def rename_experiment(public_id: str) -> Any:
    await current_operator()
    name = read_body(EXPERIMENT_UPDATE, await json_body())["name"]
    repo = services().repos.experiments
    if not is_public_id(public_id) or not await repo.rename(public_id, name):
        raise not_found("Experiment", public_id)
    return success("Experiment successfully updated.")


@route(bp, "/<public_id>/stop", ["PUT"])
async def stop_experiment(public_id: str) -> Any:
    await current_operator()
    if not is_public_id(public_id) or await tree().stop_experiment(public_id) is None:
        raise not_found("Experiment", public_id)
    return success("Experiment successfully stopped.")


@route(bp, "/<public_id>", ["DELETE"])
async def delete_experiment(public_id: str) -> Any:
    await current_operator()
    if not is_public_id(public_id) or not await tree().delete_experiment(public_id):
        raise not_found("Experiment", public_id)
    return success("Experiment successfully deleted.")


@route(bp, "/<public_id>/export/csv", ["GET"])
async def export_csv(public_id: str) -> Any:
    await current_user()
    repo = services().repos.experiments
    record = await repo.get(public_id) if is_public_id(public_id) else None
    if record is None:
        raise not_found("Experiment", public_id)
    recv, outcome = tree().start_export(public_id)
    response = Response(
        stream_body(header_line(), recv, outcome),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(record.name, record.public_id)},
    )
    response.timeout = None  # a large export may legitimately take longer than RESPONSE_TIMEOUT
    return response
