"""pki: the OEM side's HSM-backed key backends, certificate authority, store and REST service.

May import ``nucore``; never imports ``ceremony`` or ``nusec``.
"""
