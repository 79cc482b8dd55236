"""nusec: the desktop tool (typer CLI), the SWD provisioning flow and the simulated board.

Talks to the OEM service only over HTTP; may import ``pki`` (for certificate checks and for
``nusec serve``), ``ceremony`` and ``nucore``.
"""

__version__ = "0.1.0"
