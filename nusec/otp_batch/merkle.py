"""RFC 6962 Merkle tree over the manifest lines, so one HSM signature covers a whole batch and any
single image can be checked alone with a logarithmic proof.

The tree itself lives in ``pki.merkle`` (the OEM service checks batch proofs with the same code
before importing a board's key). With a power-of-two chunk size every full chunk is a complete
subtree, so the batch root is the same tree computed over the chunk roots: workers hash their
own chunk and nothing ever holds all leaves.
"""

from __future__ import annotations

from pki.merkle import leaf_hash, node_hash, proof, root, root_from_proof

__all__ = ["leaf_hash", "node_hash", "proof", "root", "root_from_proof"]
