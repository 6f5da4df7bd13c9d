"""One module per schema revision, oldest first; ids are ``NNNN_what``.

There are no downgrades: going back is restoring the backup taken before ``webmacs db upgrade``.
"""
