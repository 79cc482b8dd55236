"""/v1/health, /v1/ca/chain and /v1/nubl2: liveness, the CA certificates the desktop writes to OTP,
and the signed NuBL2 with the ROM root key it burns into KeyStore OTP slots 0/1."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization

from pki.service.problems import Problem, problem_responses
from pki.service.routes.common import Ctx, Operator, pem, resource_router
from pki.service.schemas import CaChain, Health, Nubl2Image

router = resource_router()


@router.get("/health", response_model=Health, responses=problem_responses(401, 403))
def health(who: Operator) -> Health:
    """Liveness, for any authenticated caller."""
    from pki.service import __version__

    return Health(status="ok", version=__version__)


@router.get("/ca/chain", response_model=CaChain, responses=problem_responses(401, 403))
def ca_chain(ctx: Ctx, who: Operator) -> CaChain:
    """RootCA and ICA certificates (what the desktop tool writes to OTP and checks against)."""
    root, ica = pem(ctx.root_cert), pem(ctx.ica_cert)
    return CaChain(root_pem=root, ica_pem=ica, chain_pem=ica + root)


@router.get("/nubl2", response_model=Nubl2Image, responses=problem_responses(401, 403, 503))
def nubl2(ctx: Ctx, who: Operator) -> Nubl2Image:
    """The signed NuBL2 and the HSM key it verifies with (checked at start-up, read from the token
    here): what every board's ROM will run. The service never signs with this key."""
    image = ctx.nubl2
    if image is None:
        raise Problem(
            503, "nubl2-not-configured", "No NuBL2 configured", "start the service with --nubl2-image"
        )
    key = ctx.backend.public_key(ctx.config.nubl2_key_label)
    return Nubl2Image(
        image_b64=base64.b64encode(image).decode(),
        sha256=hashlib.sha256(image).hexdigest(),
        public_key_pem=key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
    )
