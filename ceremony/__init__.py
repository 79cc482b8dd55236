"""ceremony: the offline root key ceremony, driven by one reviewed YAML file.

May import ``pki`` and ``nucore``; never imports ``nusec``.
"""
