"""Host-side view of the board's own code: the board protocol its firmware speaks over the UART
(``protocol`` for the wire format, ``channel`` for the typed client) and the committed board
binaries in ``bin/`` (the reference firmware; the KeyGen snippet)."""
