"""The per-board provisioning flow of the seed sequence (``nusec provision`` / ``nusec inspect``).

One module per concern: ``steps`` (the ordered step list as data), ``flow`` (the runner, one
visible function per seed arrow), ``journal`` (per-board resume state), ``otp_writer`` (FMC ISP
with read-before-write / verify / lock), ``csr``, ``client`` (the OEM service over HTTPS/mTLS),
``firmware``, ``lock``, ``ecdh`` and ``report``.
"""
