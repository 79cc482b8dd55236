"""/v1/boards/{uid}/firmware: sign a firmware image with the board's secure-boot key (HSM)."""

from __future__ import annotations

import hashlib
from typing import Annotated

import anyio
from fastapi import Query, Request, Response

from pki.service import audit, firmware
from pki.service.auth import Principal
from pki.service.board_states import Op
from pki.service.context import ServiceContext
from pki.service.models import FirmwareSigning
from pki.service.problems import Problem, problem_responses
from pki.service.routes.common import (
    Ctx,
    IdempotencyKey,
    Operator,
    Uid,
    add_step,
    board_for,
    move,
    now,
    parse_uid,
    refusals_audited,
    resource_router,
)
from pki.service.schemas import BoardState

router = resource_router()


@router.post(
    "/boards/{uid}/firmware",
    response_class=Response,
    responses={
        200: {
            "description": "Signed MCUboot image (docs/firmware-image.md)",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(401, 403, 404, 409, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "Raw Cortex-M firmware binary, or an unsigned MCUboot image",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def sign_firmware(
    uid: Uid,
    request: Request,
    ctx: Ctx,
    who: Operator,
    version: Annotated[
        str | None,
        Query(max_length=40, description="MAJOR.MINOR.REVISION[+BUILD]; default from the input"),
    ] = None,
    header_size: Annotated[
        int, Query(ge=32, le=65536, description="MCUboot header size for raw input")
    ] = firmware.DEFAULT_HEADER_SIZE,
    load_address: Annotated[int, Query(ge=0, le=0xFFFFFFFF)] = 0,
    _key: IdempotencyKey = None,
) -> Response:
    """Sign firmware with the board's secure-boot key (HSM); returns the MCUboot image."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/octet-stream":
        raise Problem(
            415, "unsupported-media-type", "Unsupported media type", "send application/octet-stream"
        )
    data = await request.body()
    return await anyio.to_thread.run_sync(
        lambda: _sign_firmware(ctx, uid, data, who, version, header_size, load_address)
    )


def _sign_firmware(
    ctx: ServiceContext,
    uid: str,
    data: bytes,
    who: Principal,
    version: str | None,
    header_size: int,
    load_address: int,
) -> Response:
    uid, _ = parse_uid(uid)
    with refusals_audited(ctx, who, "sign-firmware", uid):
        with ctx.sessions() as session:
            board = board_for(ctx, session, who, uid, Op.SIGN_FIRMWARE)
            label, public_der = board.sb_key_label, board.sb_public_der
        assert label is not None and public_der is not None
        if len(data) > ctx.config.max_firmware_bytes:
            raise Problem(
                413,
                "firmware-too-large",
                "Firmware too large",
                f"firmware is {len(data)} bytes; the limit is {ctx.config.max_firmware_bytes}",
            )
        try:
            signed = firmware.sign_image(
                data,
                public_key_der=public_der,
                sign_digest=lambda digest: ctx.backend.sign_digest(label, digest),
                version=firmware.ImageVersion.parse(version) if version else None,
                header_size=header_size,
                load_address=load_address,
                max_size=ctx.config.max_firmware_bytes,
            )
        except firmware.FirmwareError as exc:
            raise Problem(422, "bad-firmware", "Firmware refused", str(exc)) from None
        with ctx.write() as session:
            board = board_for(ctx, session, who, uid, Op.SIGN_FIRMWARE)
            session.add(
                FirmwareSigning(
                    uid=uid,
                    input_sha256=hashlib.sha256(data).hexdigest(),
                    image_sha256=signed.sha256.hex(),
                    size=len(signed.image),
                    version=str(signed.version),
                    signed_by=who.name,
                    at=now(),
                )
            )
            move(board, Op.SIGN_FIRMWARE)
            add_step(session, uid, BoardState.FIRMWARE_SIGNED.value, who, f"sha256 {signed.sha256.hex()}")
            audit.append(
                session,
                actor=who.name,
                role=who.role.value,
                action="sign-firmware",
                subject=uid,
                detail={
                    "image_sha256": signed.sha256.hex(),
                    "version": str(signed.version),
                    "size": len(data),
                },
            )
    return Response(
        signed.image,
        media_type="application/octet-stream",
        headers={"X-Image-SHA256": signed.sha256.hex(), "X-Image-Version": str(signed.version)},
    )
