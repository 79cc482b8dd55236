"""The simulated Nu-Link3: an M55S1-like board model plugged into pyocd as a debug probe.

Layers, from the silicon up: ``memmap`` (addresses), ``nvstate`` (non-volatile state and its
file), the peripherals (``fmc``, ``keystore``, ``crypto``, ``trng``), ``cpu`` (unicorn core),
``debug`` (SCS/DWT/FPB/ROM table as the debugger sees them), ``board`` (wires it all together)
and ``probe_plugin``/``target`` (what pyocd sees). See ``docs/sim-board.md``.
"""
