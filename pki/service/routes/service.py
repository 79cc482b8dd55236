"""/v1/health and /v1/ca/chain: liveness and the CA certificates the desktop writes to OTP."""

from __future__ import annotations

from pki.service.problems import problem_responses
from pki.service.routes.common import Ctx, Operator, pem, resource_router
from pki.service.schemas import CaChain, Health

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
