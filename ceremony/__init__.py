"""ceremony: the offline root key ceremony, driven by one reviewed YAML file.

May import ``pki`` and ``nucore``; never imports ``nusec``. Entry points (see docs/ceremony.md)::

    ceremony.config.load_config(path) -> LoadedConfig          # ConfigError on any mistake
    ceremony.config.default_rehearsal_config(workdir) -> LoadedConfig
    ceremony.config.template() -> str
    ceremony.run.run_ceremony(loaded, *, rehearsal=False, reuse=False, rehearsal_dir=None,
                              show_share=None, say=...) -> CeremonyResult
    ceremony.restore.restore_keys(loaded, ceremony_dir, share_files, output_dir, *,
                                  rehearsal=False, rehearsal_dir=None, say=...) -> RestoreResult
    ceremony.transcript.verify_transcript(path, *, root_cert=None, check_outputs=True)
        -> TranscriptReport

Errors are ``ceremony.errors.CeremonyError`` or ``pki.errors.PkiError``; both are one line.
"""
